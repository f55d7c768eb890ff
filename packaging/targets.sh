# shellcheck shell=bash
# The target table shared by build-agent, build-ipk and test-emulated (sourced, not run).
#
# rust target                      zig target              C flags               OpenWrt arch(es)                       qemu
# mips-unknown-linux-musl          mips-linux-musleabi     -mcpu=mips32r2        mips_24kc                              qemu-mips-static
# mipsel-unknown-linux-musl        mipsel-linux-musleabi   -mcpu=mips32r2        mipsel_24kc                            qemu-mipsel-static
# armv7-unknown-linux-musleabihf   arm-linux-musleabihf    -mcpu=cortex_a7       arm_cortex-a7_neon-vfpv4               qemu-arm-static
# aarch64-unknown-linux-musl       aarch64-linux-musl      (generic)             aarch64_generic aarch64_cortex-a53     qemu-aarch64-static
# x86_64-unknown-linux-musl        x86_64-linux-musl       (generic)             x86_64                                 (native)
#
# OpenWrt's MIPS cores (24Kc) have no FPU: the Rust targets are +soft-float and the zig targets are
# the soft-float `musleabi` ABI with -msoft-float, so ring's C and musl agree with Rust.

ZIG_VERSION=0.17.1

# Rust triple for a Rust triple or an OpenWrt architecture.
rust_target_of() {
  case "$1" in
    mips-unknown-linux-musl|mips_24kc) echo mips-unknown-linux-musl ;;
    mipsel-unknown-linux-musl|mipsel_24kc) echo mipsel-unknown-linux-musl ;;
    armv7-unknown-linux-musleabihf|arm_cortex-a7_neon-vfpv4) echo armv7-unknown-linux-musleabihf ;;
    aarch64-unknown-linux-musl|aarch64_generic|aarch64_cortex-a53) echo aarch64-unknown-linux-musl ;;
    x86_64-unknown-linux-musl|x86_64) echo x86_64-unknown-linux-musl ;;
    *) return 1 ;;
  esac
}

# "zig-target flags..." for a Rust triple.
zig_target_of() {
  case "$1" in
    mips-unknown-linux-musl) echo "mips-linux-musleabi -mcpu=mips32r2 -msoft-float" ;;
    mipsel-unknown-linux-musl) echo "mipsel-linux-musleabi -mcpu=mips32r2 -msoft-float" ;;
    armv7-unknown-linux-musleabihf) echo "arm-linux-musleabihf -mcpu=cortex_a7" ;;
    aarch64-unknown-linux-musl) echo "aarch64-linux-musl" ;;
    x86_64-unknown-linux-musl) echo "x86_64-linux-musl" ;;
    *) return 1 ;;
  esac
}

# OpenWrt package architecture for a target given either way; the first listed when there are
# several (aarch64: aarch64_generic), or the architecture itself when one was given.
openwrt_arch_of() {
  case "$1" in
    mips-unknown-linux-musl) echo mips_24kc ;;
    mipsel-unknown-linux-musl) echo mipsel_24kc ;;
    armv7-unknown-linux-musleabihf) echo arm_cortex-a7_neon-vfpv4 ;;
    aarch64-unknown-linux-musl) echo aarch64_generic ;;
    x86_64-unknown-linux-musl) echo x86_64 ;;
    mips_24kc|mipsel_24kc|arm_cortex-a7_neon-vfpv4|aarch64_generic|aarch64_cortex-a53|x86_64) echo "$1" ;;
    *) return 1 ;;
  esac
}

# qemu-user binary that runs a target's programs on this x86_64 machine ("" when native).
qemu_of() {
  case "$1" in
    mips-unknown-linux-musl) echo qemu-mips-static ;;
    mipsel-unknown-linux-musl) echo qemu-mipsel-static ;;
    armv7-unknown-linux-musleabihf) echo qemu-arm-static ;;
    aarch64-unknown-linux-musl) echo qemu-aarch64-static ;;
    x86_64-unknown-linux-musl) echo "" ;;
    *) return 1 ;;
  esac
}
