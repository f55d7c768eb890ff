# shellcheck shell=bash
# Shared by build-ipk and build-apk (sourced, not run): package metadata, the installed tree, and
# the apk v2 package built from it.

PKG_NAME=routerstats-agent
PKG_RELEASE=${PKG_RELEASE:-1}
PKG_LICENSE=Apache-2.0
PKG_SECTION=net
PKG_MAINTAINER=${PKG_MAINTAINER:-routerstats maintainers}
PKG_DESCRIPTION="Reports OpenWrt router statistics (wireless stations, DHCP leases, WireGuard and
OpenVPN peers, system and interface counters) to a routerstats collector over mutual TLS.
Statically linked: needs no libraries. Reads iw, wg and df when they are installed."
# Files the package manager keeps when they were changed (opkg conffiles, apk conffiles).
PKG_CONFFILES=/etc/config/routerstats

# Upstream version from the workspace Cargo.toml, e.g. 0.1.0.
pkg_upstream_version() { # repo
  sed -n '/^\[workspace.package\]/,/^\[/ s/^version *= *"\(.*\)"/\1/p' "$1/Cargo.toml" | head -n1
}

# OpenWrt-style package version: <upstream>-r<release> (valid for opkg and apk alike).
pkg_version() { # repo
  echo "$(pkg_upstream_version "$1")-r$PKG_RELEASE"
}

# SOURCE_DATE_EPOCH: the environment's, else the last commit's time, else 0.
pkg_source_date_epoch() { # repo
  if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
    echo "$SOURCE_DATE_EPOCH"
  else
    git -C "$1" log -1 --format=%ct 2>/dev/null || echo 0
  fi
}

# Lays out the installed files under DEST with their final modes:
#   /usr/sbin/routerstats-agent                0755  the static agent
#   /usr/libexec/routerstats-agent-run         0755  procd's command: enroll once, then run
#   /etc/init.d/routerstats-agent              0755  procd init script
#   /etc/config/routerstats                    0600  UCI settings (may hold the enrollment token)
#   /lib/upgrade/keep.d/routerstats-agent      0644  sysupgrade keeps the identity (/etc/routerstats)
pkg_stage_data() { # here dest binary
  local here=$1 dest=$2 bin=$3
  install -d -m 0755 "$dest" "$dest/usr" "$dest/usr/sbin" "$dest/usr/libexec" \
    "$dest/etc" "$dest/etc/init.d" "$dest/etc/config" "$dest/lib" "$dest/lib/upgrade" \
    "$dest/lib/upgrade/keep.d"
  install -m 0755 "$bin" "$dest/usr/sbin/routerstats-agent"
  install -m 0755 "$here/files/usr/libexec/routerstats-agent-run" "$dest/usr/libexec/routerstats-agent-run"
  install -m 0755 "$here/files/etc/init.d/routerstats-agent" "$dest/etc/init.d/routerstats-agent"
  install -m 0600 "$here/files/etc/config/routerstats" "$dest/etc/config/routerstats"
  install -m 0644 "$here/files/lib/upgrade/keep.d/routerstats-agent" "$dest/lib/upgrade/keep.d/routerstats-agent"
}

# Deterministic gzip'd tar of DIR's contents, entries named ./..., sorted, owned 0:0, mtime fixed.
pkg_tar_gz() { # dir out epoch
  (cd "$1" && tar --format=gnu --numeric-owner --owner=0 --group=0 --sort=name \
      --mtime="@$3" -cf - .) | gzip -n -9 >"$2"
}

# --- apk (OpenWrt 25.12+) ------------------------------------------------------------------------

# Adds what OpenWrt's buildroot puts into every apk package (include/package-pack.mk) to a staged
# tree: lib/apk/packages/<pkg>.list (the package's files, listed before the next two exist),
# .conffiles, and .conffiles_static (path and sha256: apk and sysupgrade keep a changed config).
pkg_stage_apk_meta() { # root
  local root=$1 meta=$1/lib/apk/packages f list
  install -d -m 0755 "$root/lib" "$root/lib/apk" "$meta"
  list=$(cd "$root" && find . \( -type f -o -type l \) -printf '/%P\n' | LC_ALL=C sort)
  printf '%s\n' "$list" >"$meta/$PKG_NAME.list"
  printf '%s\n' $PKG_CONFFILES >"$meta/$PKG_NAME.conffiles"
  for f in $PKG_CONFFILES; do
    echo "$f $(sha256sum <"$root$f" | cut -d' ' -f1)"
  done >"$meta/$PKG_NAME.conffiles_static"
  chmod 0644 "$meta/$PKG_NAME.list" "$meta/$PKG_NAME.conffiles" "$meta/$PKG_NAME.conffiles_static"
}

# Writes OpenWrt's apk scripts into DIR: post-install, post-upgrade, pre-deinstall. Under apk the
# package name is exported (the ipk form derives it from the script's file name, which apk does
# not keep), so default_postinst finds lib/apk/packages/<pkg>.list and enables the init script.
pkg_apk_scripts() { # dir
  local dir=$1
  mkdir -p "$dir"
  {
    echo '#!/bin/sh'
    echo '[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0'
    echo '[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0'
    echo '. ${IPKG_INSTROOT}/lib/functions.sh'
    echo 'export root="${IPKG_INSTROOT}"'
    echo "export pkgname=\"$PKG_NAME\""
    echo 'add_group_and_user'
    echo 'default_postinst'
  } >"$dir/post-install"
  { echo '#!/bin/sh'; echo 'export PKG_UPGRADE=1'; sed '1d' "$dir/post-install"; } >"$dir/post-upgrade"
  {
    echo '#!/bin/sh'
    echo '[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0'
    echo '. ${IPKG_INSTROOT}/lib/functions.sh'
    echo 'export root="${IPKG_INSTROOT}"'
    echo "export pkgname=\"$PKG_NAME\""
    echo 'default_prerm'
  } >"$dir/pre-deinstall"
  chmod 0755 "$dir/post-install" "$dir/post-upgrade" "$dir/pre-deinstall"
}

# Where the apk for ARCH goes: beside the ipk.
pkg_apk_path() { # here version arch
  echo "$1/out/$PKG_NAME-$2_$3.apk"
}

# Builds the apk v2 package (see apk2-pack) from a staged tree made by pkg_stage_data, with
# python3 only. The tree is copied first, so DATA stays as the ipk has it. Signed when
# APK_SIGN_KEY names an RSA private key (PEM); APK_SIGN_KEY_NAME is the name its public key has
# in the routers' /etc/apk/keys (default: the key file's name with .pub).
pkg_build_apk2() { # here data arch version epoch out
  local here=$1 data=$2 arch=$3 version=$4 epoch=$5 out=$6 w rc=0 sign=()
  if [ -n "${APK_SIGN_KEY:-}" ]; then
    sign=(--sign-key "$APK_SIGN_KEY" --key-name "${APK_SIGN_KEY_NAME:-$(basename "$APK_SIGN_KEY").pub}")
  fi
  w=$(mktemp -d)
  cp -a "$data" "$w/root"
  pkg_stage_apk_meta "$w/root"
  pkg_apk_scripts "$w/scripts"
  mkdir -p "$(dirname "$out")"
  "$here/apk2-pack" --root "$w/root" --scripts "$w/scripts" --out "$out" --epoch "$epoch" \
    --info "pkgname=$PKG_NAME" --info "pkgver=$version" \
    --info "pkgdesc=$(echo "$PKG_DESCRIPTION" | paste -sd' ')" \
    --info "builddate=$epoch" --info "arch=$arch" --info "origin=$PKG_NAME" \
    --info "maintainer=$PKG_MAINTAINER" --info "license=$PKG_LICENSE" "${sign[@]}" || rc=$?
  rm -rf "$w"
  return $rc
}
