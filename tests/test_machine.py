"""The machine description's ISA flags: x86 flags, Arm features from hwcaps or cpuinfo, and 'could not tell'."""

from __future__ import annotations

from pathlib import Path

from fer_edge.machine import describe_isa, parse_cpuinfo

PI = Path(__file__).parent / "aarch64"
X86 = ("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n"
       "flags\t\t: fpu sse4_1 sse4_2 avx avx2 fma bmi2 sha_ni\n")


def test_raspberry_pi_4_and_5_cpuinfo():
    pi4 = parse_cpuinfo((PI / "cpuinfo-pi4.txt").read_text())
    assert pi4["cpu"] == "Raspberry Pi 4 Model B Rev 1.4 (Cortex-A72)" and pi4["kind"] == "Features"
    d = describe_isa("aarch64", pi4, None)
    assert d["isa"] == "asimd" and d["isa_absent"] == "asimddp, i8mm, bf16, sve"
    assert d["isa_source"] == "/proc/cpuinfo Features" and d["isa_note"] == ""
    pi5 = parse_cpuinfo((PI / "cpuinfo-pi5.txt").read_text())
    assert pi5["cpu"] == "Raspberry Pi 5 Model B Rev 1.0 (Cortex-A76)"
    d = describe_isa("aarch64", pi5, {"asimd", "asimddp"})
    assert d["isa"] == "asimd, asimddp" and d["isa_absent"] == "i8mm, bf16, sve" and d["isa_note"] == ""


def test_hwcaps_win_over_a_cpuinfo_that_disagrees():
    pi5 = parse_cpuinfo((PI / "cpuinfo-pi5.txt").read_text())
    d = describe_isa("aarch64", pi5, {"asimd"})  # e.g. a Pi 5 cpuinfo shown to an emulated Cortex-A72
    assert d["isa"] == "asimd" and "asimddp" in d["isa_absent"]
    assert "differ" in d["isa_note"] and d["isa_source"].startswith("getauxval")


def test_arm_seeing_an_x86_cpuinfo_says_so():
    """Under qemu-user without a faked cpuinfo the guest sees the host's x86 flags: never report them for Arm."""
    x86 = parse_cpuinfo(X86)
    d = describe_isa("aarch64", x86, {"asimd", "asimddp", "i8mm", "bf16"})
    assert d["isa"] == "asimd, asimddp, i8mm, bf16" and "avx2" not in d["isa"]
    assert "no Arm Features line" in d["isa_note"]
    d = describe_isa("aarch64", x86, None)
    assert d["isa"] == "unknown" and "could not tell" in d["isa_note"]


def test_x86_flags_and_what_is_absent():
    d = describe_isa("x86_64", parse_cpuinfo(X86), None)
    assert d["isa"] == "sse4_2, avx2, fma"
    assert d["isa_absent"] == "avx512f, avx512_vnni, avx_vnni, amx_int8, avx512_bf16"
    assert describe_isa("x86_64", parse_cpuinfo("processor : 0\n"), None)["isa"] == "unknown"
    assert "could not tell" in describe_isa("riscv64", parse_cpuinfo(""), None)["isa_note"]
