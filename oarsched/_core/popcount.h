/* C helpers of oarsched's bitsets (included by bitset.pxd). */
#ifndef OARSCHED_POPCOUNT_H
#define OARSCHED_POPCOUNT_H

/* Population count of a 64-bit word.  Without -mpopcnt, GCC's builtin is a
   call into libgcc (a table walk per word): the branch-free SWAR count below
   is inlined instead, and is portable to any x86-64.  With the popcnt
   instruction enabled (or on other architectures) the builtin is used. */
#include <stdint.h>
#if defined(__POPCNT__) || !(defined(__x86_64__) || defined(__i386__))
static inline int oarsched_popcount64(uint64_t x) { return __builtin_popcountll(x); }
#else
static inline int oarsched_popcount64(uint64_t x) {
    x = x - ((x >> 1) & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (int)((x * 0x0101010101010101ULL) >> 56);
}
#endif

/* Counting a whole set: with the popcnt instruction when the CPU has it
   (checked once at run time, so the build stays portable). */
static int64_t oarsched_count_swar(const uint64_t* a, int64_t nw, const uint64_t* b) {
    int64_t i, c = 0;
    if (b) { for (i = 0; i < nw; i++) c += oarsched_popcount64(a[i] & b[i]); }
    else { for (i = 0; i < nw; i++) c += oarsched_popcount64(a[i]); }
    return c;
}
#if (defined(__x86_64__) || defined(__i386__)) && !defined(__POPCNT__) && defined(__GNUC__)
__attribute__((target("popcnt")))
static int64_t oarsched_count_hw(const uint64_t* a, int64_t nw, const uint64_t* b) {
    int64_t i, c = 0;
    if (b) { for (i = 0; i < nw; i++) c += __builtin_popcountll(a[i] & b[i]); }
    else { for (i = 0; i < nw; i++) c += __builtin_popcountll(a[i]); }
    return c;
}
static int oarsched_has_popcnt = -1;
static inline int64_t oarsched_count(const uint64_t* a, int64_t nw, const uint64_t* b) {
    if (oarsched_has_popcnt < 0) { __builtin_cpu_init(); oarsched_has_popcnt = __builtin_cpu_supports("popcnt") ? 1 : 0; }
    return oarsched_has_popcnt ? oarsched_count_hw(a, nw, b) : oarsched_count_swar(a, nw, b);
}
#else
static inline int64_t oarsched_count(const uint64_t* a, int64_t nw, const uint64_t* b) {
    return oarsched_count_swar(a, nw, b);
}
#endif

#endif /* OARSCHED_POPCOUNT_H */
