# shellcheck shell=bash
# Shared by build-ipk and build-apk (sourced, not run): package metadata and the installed tree.

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
pkg_stage_data() { # here dest binary
  local here=$1 dest=$2 bin=$3
  install -d -m 0755 "$dest" "$dest/usr" "$dest/usr/sbin" "$dest/usr/libexec" \
    "$dest/etc" "$dest/etc/init.d" "$dest/etc/config"
  install -m 0755 "$bin" "$dest/usr/sbin/routerstats-agent"
  install -m 0755 "$here/files/usr/libexec/routerstats-agent-run" "$dest/usr/libexec/routerstats-agent-run"
  install -m 0755 "$here/files/etc/init.d/routerstats-agent" "$dest/etc/init.d/routerstats-agent"
  install -m 0600 "$here/files/etc/config/routerstats" "$dest/etc/config/routerstats"
}

# Deterministic gzip'd tar of DIR's contents, entries named ./..., sorted, owned 0:0, mtime fixed.
pkg_tar_gz() { # dir out epoch
  (cd "$1" && tar --format=gnu --numeric-owner --owner=0 --group=0 --sort=name \
      --mtime="@$3" -cf - .) | gzip -n -9 >"$2"
}
