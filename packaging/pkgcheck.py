"""What check-ipk and check-apk both check: the installed files, their modes and contents, and
the agent binary (static, stripped, ELF machine, MIPS soft-float). Imported, not run."""

import re
import struct
import sys

PKG = "routerstats-agent"
ARCHS = {
    # arch: (ELF machine, ELF class, little endian)
    "mips_24kc": (8, 1, False),
    "mipsel_24kc": (8, 1, True),
    "arm_cortex-a7_neon-vfpv4": (40, 1, True),
    "aarch64_generic": (183, 2, True),
    "aarch64_cortex-a53": (183, 2, True),
    "x86_64": (62, 2, True),
}
# Installed files and the modes they must have (the config may be 0644 or 0600).
# Paths without a prefix: the ipk's data.tar.gz names them ./usr/..., the apk's usr/....
FILES = {
    "usr/sbin/routerstats-agent": {0o755},
    "usr/libexec/routerstats-agent-run": {0o755},
    "etc/init.d/routerstats-agent": {0o755},
    "etc/config/routerstats": {0o644, 0o600},
    "lib/upgrade/keep.d/routerstats-agent": {0o644},
}
CONFFILES = ["/etc/config/routerstats"]


class Checker:
    def __init__(self, path):
        self.path = path
        self.failures = []

    def check(self, ok, what):
        if not ok:
            self.failures.append(what)
        return ok


def gzip_header_ok(c, raw, what):
    """gzip -n: no file name stored and a zero mtime."""
    if not c.check(raw[:2] == b"\x1f\x8b", f"{what}: not gzip data"):
        return False
    flags = raw[3]
    mtime = struct.unpack("<I", raw[4:8])[0]
    c.check(not flags & 0x08, f"{what}: gzip header stores a file name (use gzip -n)")
    c.check(mtime == 0, f"{what}: gzip header stores a time ({mtime}; use gzip -n)")
    return True


def elf_check(c, data, arch):
    want_machine, want_class, want_le = ARCHS[arch]
    if not c.check(data[:4] == b"\x7fELF", "binary: not an ELF file"):
        return
    ei_class, ei_data = data[4], data[5]
    c.check(ei_class == want_class, f"binary: ELF class {ei_class}, want {want_class} for {arch}")
    le = ei_data == 1
    c.check(le == want_le, f"binary: endianness is {'little' if le else 'big'}, wrong for {arch}")
    e = "<" if le else ">"
    if ei_class == 1:
        (e_type, e_machine, _v, _entry, e_phoff, e_shoff, e_flags, _eh, e_phentsize, e_phnum,
         e_shentsize, e_shnum, e_shstrndx) = struct.unpack(e + "HHIIIIIHHHHHH", data[16:52])
    else:
        (e_type, e_machine, _v, _entry, e_phoff, e_shoff, e_flags, _eh, e_phentsize, e_phnum,
         e_shentsize, e_shnum, e_shstrndx) = struct.unpack(e + "HHIQQQIHHHHHH", data[16:64])
    c.check(e_type in (2, 3), f"binary: ELF type {e_type} is not an executable")
    c.check(e_machine == want_machine, f"binary: ELF machine {e_machine}, want {want_machine} for {arch}")
    # Static: no program interpreter and no dynamic section.
    for i in range(e_phnum):
        off = e_phoff + i * e_phentsize
        p_type = struct.unpack(e + "I", data[off:off + 4])[0]
        c.check(p_type != 3, "binary: has a program interpreter (PT_INTERP): not statically linked")
        c.check(p_type != 2, "binary: has a dynamic section (PT_DYNAMIC): not statically linked")
    # Section headers: no symbol table (stripped); for MIPS, the ABI flags must say soft-float.
    sections = []
    for i in range(e_shnum):
        off = e_shoff + i * e_shentsize
        if ei_class == 1:
            sh_name, sh_type, _f, _a, sh_offset, sh_size = struct.unpack(e + "IIIIII", data[off:off + 24])
        else:
            sh_name, sh_type, _f, _a, sh_offset, sh_size = struct.unpack(e + "IIQQQQ", data[off:off + 40])
        sections.append((sh_name, sh_type, sh_offset, sh_size))
    names = {}
    if 0 <= e_shstrndx < len(sections):
        _n, _t, stroff, strsize = sections[e_shstrndx]
        strtab = data[stroff:stroff + strsize]
        for sh_name, sh_type, sh_offset, sh_size in sections:
            end = strtab.find(b"\0", sh_name)
            names[strtab[sh_name:end].decode("ascii", "replace")] = (sh_type, sh_offset, sh_size)
    c.check(".symtab" not in names, "binary: has a symbol table (not stripped)")
    c.check(not any(n.startswith(".debug") for n in names), "binary: has debug sections (not stripped)")
    # MIPS: LLVM writes procedure descriptors (.pdr, ~160 KB, not loaded, read by nothing) that
    # `strip --strip-all` keeps; build-agent removes them with `-R .pdr`.
    c.check(".pdr" not in names, "binary: has a .pdr section (strip -R .pdr)")
    if want_machine == 8:
        abif = names.get(".MIPS.abiflags")
        if c.check(abif is not None, "binary: no .MIPS.abiflags section to tell the float ABI"):
            _t, off, _s = abif
            fp_abi = data[off + 7]
            # Val_GNU_MIPS_ABI_FP_SOFT = 3; 0 (any) is also FPU-free.
            c.check(fp_abi in (0, 3), f"binary: MIPS FP ABI {fp_abi} is not soft-float (3)")
    if want_machine == 40:
        # EF_ARM_ABI_FLOAT_HARD: OpenWrt's arm_cortex-a7_neon-vfpv4 is hard-float.
        c.check(e_flags & 0x400, f"binary: ARM ELF flags {e_flags:#x} do not say hard-float (EABI hf)")



def check_payload(c, text_of, binary, arch):
    """The installed files' contents: text_of(path) gives a file's text ('' when missing), binary
    the agent's bytes (None when missing)."""
    init = text_of("etc/init.d/routerstats-agent")
    c.check(init.startswith("#!/bin/sh /etc/rc.common\n"), "init script: not an rc.common script")
    for needle in ("USE_PROCD=1", "START=99", "procd_set_param respawn", "procd_set_param stdout 1",
                   "procd_set_param stderr 1", "procd_add_reload_trigger routerstats"):
        c.check(needle in init, f"init script: no {needle!r}")
    runner = text_of("usr/libexec/routerstats-agent-run")
    for needle in ("delete routerstats.main.token", "commit routerstats", "enroll --token-file -",
                   "exec \"$AGENT\" --config \"$CONFIG\" run"):
        c.check(needle in runner, f"runner: no {needle!r}")
    # The token on a command line would show in /proc/<pid>/cmdline.
    c.check(re.search(r"--token[ =]", runner) is None, "runner: passes the token with --token")
    uci = text_of("etc/config/routerstats")
    c.check(re.search(r"^config agent 'main'$", uci, re.M) is not None, "config: no `config agent 'main'` section")
    for opt in ("enabled", "collector", "token", "interval", "spool_reports"):
        c.check(re.search(rf"^\s*option {opt} ", uci, re.M) is not None, f"config: no option {opt}")
    # sysupgrade keeps what keep.d lists (comments and blank lines skipped): the identity.
    keep = [l.strip() for l in text_of("lib/upgrade/keep.d/routerstats-agent").splitlines()
            if l.strip() and not l.startswith("#")]
    c.check(keep == ["/etc/routerstats/"], f"keep.d: lists {keep}, want ['/etc/routerstats/']")
    if binary is not None and arch in ARCHS:
        elf_check(c, binary, arch)


def run(argv, check_one, doc):
    """The command line of check-ipk and check-apk: one line per package, the failures below it;
    exit 0 when all pass, 1 when any failed, 2 on usage errors."""
    if not argv or argv[0] in ("-h", "--help"):
        print(doc.strip(), file=sys.stderr)
        return 2
    failed = 0
    for path in argv:
        c = check_one(path)
        if c.failures:
            failed += 1
            print(f"FAIL {path}")
            for f in c.failures:
                print(f"  - {f}")
        else:
            print(f"ok   {path}")
    return 1 if failed else 0
