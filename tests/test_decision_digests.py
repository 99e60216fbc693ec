"""Decisions pinned: a digest of every decision of a round, per benchmark workload.

The digests were computed once, from the code that passed the conformance
corpus, before any optimisation of the core, the slot sets, the quotas path or
the database layer.  Each optimisation must leave them identical: a faster
scheduler makes the same decisions.  A digest covers every placed job's id,
moldable, start time and resources, and the ids left unplaced
(:func:`benchmarks.workloads.decision_digest`).

Shared workloads come from the bench folder (skipped without it); generated
ones are rebuilt from their seed (:data:`benchmarks.workloads.GENERATED`).
The largest (20,000 jobs, 100,000 resources) are marked slow.
"""
from __future__ import annotations

import pytest

from benchmarks import workloads

SHARED = {
    "coreonly-10k-100": "1b2c79c752716b204fbcf9c37ff3441339dd00233f32909dba495fb7ac86b56e",
    "coreonly-10k-200": "a43e2019e6d8aed8e49e43ad6ea3f835805a5fce9e51bed098a50f830cc74160",
    "coreonly-10k-500": "81d504a12ad55e102c047b18fd68fefed4c9d9d6507f91aec7581347efe60756",
    "coreonly-10k-1000": "aa25f65173da3ae563952d34d7e259fef58192b6bf2cfc5f888cd75179654d84",
    "coreonly-10k-2000": "8a17f2158c93754eca9348038a15cc43cb3b38c07dc1c5fec5680dc5de916171",
    "nodeonly-1k-5000": "562f70a5c08d91512aacc4e06646129fda4d6e9bf7b3f0b3791ef1eae4fa5733",
    "nodeonly-10k-100": "4aec9f091c22be3e639c71f2d3a61de3927c8c5986ebe203bf9490e97297cd24",
    "nodeonly-10k-200": "2dc31546380467a93d676900cfbaf00ed0c604f267feca33d3200596aa9be110",
    "nodeonly-10k-500": "8bfd8ed6af907f8f58db5239b96766b5c463936703aec6a4bba0d7a773438f73",
    "nodeonly-10k-1000": "c200eadfd2d902763895217a26ea84157a4ef0cb8d85a43eb4df2fc27e6e0395",
    "nodeonly-10k-2000": "7c854af45951139e5659abc87f6d313ad229855c988708c1807d7a2b2e74f24c",
    "normal-10k-100": "a9425fbe34d83a192ef7d83e94f4406617ed0762a9a4ba42a5b26d66488472b7",
    "normal-10k-200": "35e6eae5d549945cdc03cb8c4c162cf1ab86d6f2ab8553a3f3e22703b6275c21",
    "normal-10k-500": "93ef73ae65a4d48de421176cb1001922260b744343b2b576697b5c5dc88e61c6",
    "normal-10k-1000": "623856b98c64438eaa4b94ee84532f738f2e584c59b82d1cb78bd5c707630398",
    "normal-10k-2000": "428efad7882f9e9274338a39108e1fad783d3128d1e7d49e54ee32228dbffbbb",
    "normal-quotas-10k-100": "3044a6ecd0a3ee233933e80160ead3c99117770af42e0f04609ebd8862f7e158",
    "normal-quotas-10k-500": "a4620bcb312620a8426a4a25a9550ee25edb95cbb1e2d71a938223c5a5717ce1",
}

GENERATED = {
    "nodeonly-10k-5000": "48d3bc3142951c06e0d70217961c041559ad7931316ea5e4a6baba5e159d3bc3",
    "normal-10k-5000": "736f93c2219c4d9eb5901c808df43620d9b8c9d8938cc38a994f5de5a2346157",
    "nodeonly-1k-500": "23d4d3541c60166e9dd38bbe2fa0518521d805d1a1dedd894eda80b0afa57dca",
    "nodeonly-2k-500": "c8787735b302dafbc64eee3a8970dd78611ad42cbb8ba73c5f7ce7140819a64e",
    "nodeonly-5k-500": "9a971d6c57cca0f502e6500f9f36e92984a297d59fcffc24c3a5bee57430554f",
    "nodeonly-20k-500": "a5e21fdc2b8317c8a125cb9e6f623c7a42a60d859d0acf241e653437bdfe2484",
    "normal-1k-500": "4f651f4d7d10ac99c7f574a4c8bd08962222ba6dd1e4bfa8f91f5b1735bceeeb",
    "normal-2k-500": "4bb50650519ce61146b104665ac2da1f44d06b7261fc3495738effe31f406650",
    "normal-5k-500": "188eb779e1b0be844e7edfaf892dd2dbda08de83e318aa613447f83eea630112",
    "normal-20k-500": "6698b92b1dd44775298e0f1fbcbe0e955bfbf8d9b77d86cb2ff9610bc99e2616",
    "coreonly-1k-500": "422254fa853c9a208ff935ec3c8041228358f1f82ef89252556fd6f29d38acd3",
    "coreonly-2k-500": "29409c3ae8671a1b5f26c574ead7c7b01719fc74bde41e419d916944e2797476",
    "coreonly-5k-500": "a4bb5dc941ba46aa921f31c16712f6925a6234b3da12d720347d8707676cf1d7",
    "coreonly-20k-500": "e706f96b17ba109afc35282a6cde83d557ce307ea336579ca2a897cba6e3a1b5",
    "mixed-quotas-20k-1000": "7703e64ae5dd470c7fb3fbf3a02fb76e6bb3222cac668aeb402f333656ae722a",
    "mixed-nodeonly-20k-1000": "2ada0f2304678271d3f2be06c352775b45832d7fe30a2692df21f3646a2c00a9",
}

GENERATED_SLOW = {
    "nodeonly-10k-10000": "bdce59339d1db72eb9b9f3fa00999004ca8fab8cfdbed6f70867476aa3a0c431",
    "nodeonly-10k-20000": "c30d0c752895e6ea8810b8766018d70e44a56ef8201664203de32c7fd3daeb4d",
    "normal-10k-10000": "de779a4a6e61c75118fce3faad43e4d04a67b22cd55e182770b697e669c29114",
    "normal-10k-20000": "81e221949814ebb3cb5c8ac96726bb26ca23a05b90912087d729f2e51543f4ba",
    "coreonly-10k-5000": "3f386b4adb30ab29fb9eb14ffa14b5a3a777e5267741ebe2d7e094e2f700b682",
    "coreonly-10k-10000": "b0ca9f45f7d800227085f945fed8cf92d6f8eda12329017706faee3ff778a65d",
    "coreonly-10k-20000": "012bd2e1cf47f18c3cc2949adf64f8041f8a15786787fe4c386551abed654e67",
    "nodeonly-50k-500": "33d56de06d84328cac70008f1ae2243516f8562d453c5a176aca252f2fc3de7e",
    "nodeonly-100k-500": "22de9e527de026cf290f1aa7860a92a2a90c281b517e0c09bb0f01cce4b10c06",
    "normal-50k-500": "d4e0a5544ab06f289da2ed3731566577d67bbcee2c5c620da88b694cf951486d",
    "normal-100k-500": "a35235bc77d68773cc65ac9e0cc4f04f1a7b0d75572c51a353cb9f9ab5f888a7",
    "coreonly-50k-500": "1504979cc82df357d8251f44784daec7c97a66e184a2cc8dfec6c42ebcb1b029",
    "coreonly-100k-500": "8e76ae8b377b97b659bf0e91d199e7ef34c921f4bb2d5dbd04614f044c269c9c",
    "load-100k-20000": "0c1bd550fbf3bd6bb35a5eb2e8df3c86b3b86d345b0c7e7ce4c53f640abb121a",
}


def _check(name: str, expected: str) -> None:
    wl = workloads.load_any(name)
    assert workloads.decision_digest(workloads.run_round(wl)) == expected


@pytest.mark.parametrize("name", sorted(SHARED))
def test_shared_workload_decisions_unchanged(name: str) -> None:
    if name not in workloads.suite_names():
        pytest.skip("shared bench folder not available")
    _check(name, SHARED[name])


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_workload_decisions_unchanged(name: str) -> None:
    _check(name, GENERATED[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(GENERATED_SLOW))
def test_large_workload_decisions_unchanged(name: str) -> None:
    _check(name, GENERATED_SLOW[name])


def test_digest_sees_every_decision() -> None:
    """Moving one job by a second, or one resource, changes the digest."""
    wl = workloads.load_any("normal-1k-500")
    result = workloads.run_round(wl)
    before = workloads.decision_digest(result)
    first = min(result.assignments)
    result.assignments[first].start_time += 1
    assert workloads.decision_digest(result) != before
