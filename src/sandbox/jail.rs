//! The bwrap command line, which is the whole of what sandboxed code can see: every namespace
//! unshared (no network, its own pids), the host's `/usr` read-only with the top-level links
//! into it, the few files of `/etc` the dynamic loader and interpreters read, a fresh `/proc`,
//! a minimal read-only `/dev`, a read-only root, and two small tmpfs, `/tmp` and `/work` (the sources, copied in by fd).
//! No home, no `/root`, no host `/tmp`, none of the server's environment.

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::Path;

/// `PATH` inside the sandbox; also where [`super::Sandbox::interpreter`] looks.
pub(super) const PATH_INSIDE: &str = "/usr/local/bin:/usr/bin:/bin";

/// The uid and gid code sees inside (mapped to whatever uid runs bwrap outside).
const UID_INSIDE: &str = "65534";

/// Top-level names that merged-/usr systems make links into `/usr` and older ones directories.
const TOP_LEVEL_DIRS: [&str; 6] = ["bin", "sbin", "lib", "lib64", "lib32", "libx32"];

/// What of `/etc` interpreters need: the loader's cache and config, Debian's alternatives (e.g.
/// `nodejs`), the time zone. Not passwd, hosts, ssl keys or anything else of the host.
const ETC_FILES: [&str; 5] =
    ["/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/localtime"];

/// A source file to be copied from an inherited fd to `/work/<name>`.
pub(super) struct CopyIn<'a> {
    pub fd: RawFd,
    pub name: &'a str,
}

/// The writable space inside, in bytes: each of `/work` and `/tmp` is a tmpfs of this size.
pub(super) struct Space {
    pub work_bytes: u64,
    pub tmp_bytes: u64,
}

/// bwrap's arguments for running `argv` in `/work`, with bwrap writing the namespace's pid to
/// `info_fd` (so a timeout can kill the namespace's init and bwrap can reap it).
pub(super) fn arguments(copy_in: &[CopyIn<'_>], space: &Space, info_fd: RawFd, argv: &[&str]) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    push(&["--unshare-all", "--unshare-user", "--disable-userns", "--uid", UID_INSIDE, "--gid", UID_INSIDE]);
    push(&["--die-with-parent", "--new-session", "--hostname", "sandbox"]);
    push(&["--clearenv", "--setenv", "PATH", PATH_INSIDE, "--setenv", "HOME", "/work", "--setenv", "LANG", "C.UTF-8"]);
    push(&["--ro-bind", "/usr", "/usr"]);
    for name in TOP_LEVEL_DIRS {
        let host = Path::new("/").join(name);
        let inside = format!("/{name}");
        match std::fs::symlink_metadata(&host) {
            Ok(meta) if meta.file_type().is_symlink() => {
                if let Ok(target) = std::fs::read_link(&host) {
                    args.extend([OsString::from("--symlink"), target.into_os_string(), OsString::from(inside)]);
                }
            }
            Ok(meta) if meta.is_dir() => {
                args.extend(["--ro-bind".into(), host.into_os_string(), OsString::from(inside)]);
            }
            _ => {}
        }
    }
    for file in ETC_FILES {
        args.extend(["--ro-bind-try", file, file].map(OsString::from));
    }
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    // bwrap's /dev is a tmpfs the sandbox's uid owns (so is its root): read-only, like `/`
    // below, or code could fill the host's memory through /dev/shm.
    push(&["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev"]);
    let tmp_bytes = space.tmp_bytes.to_string();
    let work_bytes = space.work_bytes.to_string();
    push(&["--perms", "1777", "--size", &tmp_bytes, "--tmpfs", "/tmp"]);
    push(&["--perms", "0755", "--size", &work_bytes, "--tmpfs", "/work"]);
    for file in copy_in {
        let fd = file.fd.to_string();
        let dest = format!("/work/{}", file.name);
        push(&["--perms", "0644", "--file", &fd, &dest]);
    }
    let info_fd = info_fd.to_string();
    push(&["--remount-ro", "/", "--chdir", "/work", "--info-fd", &info_fd, "--"]);
    push(argv);
    args
}
