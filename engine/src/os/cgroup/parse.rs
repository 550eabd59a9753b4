//! Pure parsers of the kernel's text files the cgroup module reads:
//! `/proc/self/mountinfo`, `/proc/self/cgroup`, `/proc/<pid>/stat`, and the
//! flat keyed files (`memory.oom_control`, `memory.events`).

use std::path::{Path, PathBuf};

use super::Controller;

/// One line of `/proc/self/mountinfo` (proc(5)), the fields this module uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Mount {
    /// The directory of the file system that is mounted (field 4): for a
    /// cgroup file system, the cgroup seen at the mount point.
    pub(super) root: String,
    /// Where it is mounted (field 5).
    pub(super) mount_point: PathBuf,
    /// The file system type (after the ` - ` separator).
    pub(super) fstype: String,
    /// The super block's options (the last field), split at commas: for a
    /// cgroup v1 mount, its controllers.
    pub(super) super_options: Vec<String>,
}

/// Undoes mountinfo's octal escapes of space, tab, newline and backslash:
/// a backslash and three octal digits of a byte (`\040`) is that byte;
/// anything else is left as it is.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        // Not `u8::from_str_radix`, which takes a sign: `\+12`.
        if let (b'\\', Some(&[a @ b'0'..=b'3', b @ b'0'..=b'7', c @ b'0'..=b'7'])) =
            (bytes[i], bytes.get(i + 1..i + 4))
        {
            out.push(((a - b'0') << 6) | ((b - b'0') << 3) | (c - b'0'));
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mounts listed in `text` (the contents of `/proc/self/mountinfo`);
/// malformed lines are skipped.
pub(super) fn mountinfo(text: &str) -> Vec<Mount> {
    text.lines().filter_map(mount_line).collect()
}

fn mount_line(line: &str) -> Option<Mount> {
    let (before, after) = line.split_once(" - ")?;
    let fields: Vec<&str> = before.split(' ').collect();
    let (root, mount_point) = (fields.get(3)?, fields.get(4)?);
    let mut after = after.split(' ');
    let fstype = after.next()?;
    let _source = after.next()?;
    let super_options = after.next().unwrap_or("");
    Some(Mount {
        root: unescape(root),
        mount_point: PathBuf::from(unescape(mount_point)),
        fstype: fstype.to_owned(),
        super_options: super_options.split(',').map(str::to_owned).collect(),
    })
}

/// One line of `/proc/self/cgroup` (cgroups(7)): `id:controllers:path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Membership {
    /// The hierarchy id; 0 for cgroup v2.
    pub(super) id: u32,
    /// The v1 controllers of the hierarchy (empty for v2).
    pub(super) controllers: Vec<String>,
    /// The process's cgroup in that hierarchy, from its root.
    pub(super) path: String,
}

/// The memberships listed in `text` (the contents of `/proc/self/cgroup`);
/// malformed lines are skipped.
pub(super) fn proc_cgroup(text: &str) -> Vec<Membership> {
    // Lines end with `'\n'` alone: not `str::lines`, which also takes a
    // `'\r'` before it, which may end a cgroup's name.
    text.split('\n')
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let id = parts.next()?.parse().ok()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            Some(Membership {
                id,
                controllers: controllers
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect(),
                path: path.to_owned(),
            })
        })
        .collect()
}

/// The start time of a process (field 22 of `/proc/<pid>/stat`, in clock
/// ticks since boot): with the pid, it names a process for good, since a
/// reused pid has a later start time. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its last `)`.
pub(super) fn start_time(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts with field 3 (the state).
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// A base directory's name, `<root pid>.<root start time>`.
pub(super) fn base_name(pid: i32, start: u64) -> String {
    format!("{pid}.{start}")
}

/// The root pid and start time a base directory's name stands for; `None`
/// for any other name (left alone).
pub(super) fn parse_base_name(name: &str) -> Option<(i32, u64)> {
    let (pid, start) = name.split_once('.')?;
    let (pid, start) = (pid.parse().ok()?, start.parse().ok()?);
    // Only what `base_name` writes: `parse` also takes a sign and leading
    // zeros, which would make another directory's name stand for a root.
    (pid > 0 && base_name(pid, start) == name).then_some((pid, start))
}

/// The value of `key` in a flat keyed file (`key value` per line), such as
/// `memory.oom_control` or `memory.events`.
pub(super) fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// The controllers named in a `cgroup.controllers` or
/// `cgroup.subtree_control` file, of those this module uses.
pub(super) fn controller_list(text: &str) -> Vec<Controller> {
    text.split_whitespace()
        .filter_map(Controller::from_name)
        .collect()
}

/// The pids listed in a `cgroup.procs` file. A 0 (a process in another pid
/// namespace) is left out: it can not be signalled from here.
pub(super) fn pids(text: &str) -> Vec<i32> {
    text.split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|&p| p > 0)
        .collect()
}

/// Where this process's cgroups are, per hierarchy: found from the mounts
/// and the process's memberships, before any directory is looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Located {
    /// This process's cgroup in the cgroup v2 hierarchy.
    pub(super) v2: Option<PathBuf>,
    /// This process's cgroup in the cgroup v1 hierarchy of each controller
    /// (memory, pids, cpu).
    pub(super) v1: [Option<PathBuf>; 3],
}

impl Located {
    /// This process's v1 cgroup directory for `controller`.
    pub(super) fn v1(&self, controller: Controller) -> Option<&Path> {
        self.v1[controller as usize].as_deref()
    }
}

/// The directory of the cgroup `path` (from the hierarchy's root) through
/// `mount`, which shows the cgroup `mount.root` at its mount point; `None`
/// when the cgroup is not below what the mount shows.
fn through(mount: &Mount, path: &str) -> Option<PathBuf> {
    let root = mount.root.trim_end_matches('/');
    let rest = if root.is_empty() {
        path
    } else {
        match path.strip_prefix(root)? {
            rest if rest.is_empty() || rest.starts_with('/') => rest,
            _ => return None,
        }
    };
    let rest = rest.trim_start_matches('/');
    Some(if rest.is_empty() {
        mount.mount_point.clone()
    } else {
        mount.mount_point.join(rest)
    })
}

/// Finds this process's cgroup directories: for v2, through a `cgroup2`
/// mount and the `0::` membership; for each v1 controller, through a
/// `cgroup` mount whose options name it and the membership that lists it.
pub(super) fn locate(mounts: &[Mount], memberships: &[Membership]) -> Located {
    let mut located = Located::default();
    if let Some(own) = memberships
        .iter()
        .find(|m| m.id == 0 && m.controllers.is_empty())
    {
        located.v2 = mounts
            .iter()
            .filter(|m| m.fstype == "cgroup2")
            .find_map(|m| through(m, &own.path));
    }
    for controller in Controller::ALL {
        let name = controller.name();
        let Some(own) = memberships
            .iter()
            .find(|m| m.id != 0 && m.controllers.iter().any(|c| c == name))
        else {
            continue;
        };
        located.v1[controller as usize] = mounts
            .iter()
            .filter(|m| m.fstype == "cgroup" && m.super_options.iter().any(|o| o == name))
            .find_map(|m| through(m, &own.path));
    }
    located
}

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod check;
#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine's kind: cgroup v1 controllers each mounted alone (cpu
    /// and cpuacct apart), an empty cgroup2 at `unified`.
    const HYBRID_MOUNTINFO: &str = "\
22 1 0:20 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
4:memory:/process_api/69f9542b
1:cpu:/
0::/
";

    #[test]
    fn mountinfo_lines_give_root_mount_point_type_and_options() {
        let mounts = mountinfo(HYBRID_MOUNTINFO);
        assert_eq!(mounts.len(), 8);
        assert_eq!(
            mounts[2],
            Mount {
                root: "/".into(),
                mount_point: "/sys/fs/cgroup/cpu".into(),
                fstype: "cgroup".into(),
                super_options: vec!["rw".into(), "cpu".into()],
            }
        );
        // Optional fields before the separator, and escapes.
        let line = "36 35 98:0 /a\\040b /mnt/with\\040space rw shared:1 master:2 - cgroup cgroup rw,cpu,cpuacct";
        let mount = &mountinfo(line)[0];
        assert_eq!(mount.root, "/a b");
        assert_eq!(mount.mount_point, Path::new("/mnt/with space"));
        assert_eq!(mount.super_options, ["rw", "cpu", "cpuacct"]);
        assert!(mountinfo("garbage\n1 2 3\n").is_empty());
        assert_eq!(unescape("a\\134b\\011"), "a\\b\t");
        // Only a backslash and three octal digits of a byte: `\+12` was
        // read as a newline.
        for kept in ["\\+12", "\\-12", "\\08a", "\\400", "\\12", "\\"] {
            assert_eq!(unescape(kept), kept);
        }
    }

    #[test]
    fn proc_cgroup_lines_give_id_controllers_and_path() {
        let memberships = proc_cgroup(HYBRID_CGROUP);
        assert_eq!(memberships.len(), 5);
        assert_eq!(memberships[0].controllers, ["name=systemd"]);
        assert_eq!(memberships[2].path, "/process_api/69f9542b");
        assert_eq!(memberships[4].id, 0);
        assert!(memberships[4].controllers.is_empty());
        // A path with a colon stays whole, and so does one ending with a
        // carriage return (it was cut off: another cgroup's path).
        assert_eq!(proc_cgroup("0::/a:b")[0].path, "/a:b");
        assert_eq!(proc_cgroup("0::/a\r\n1:cpu:/b\r")[0].path, "/a\r");
        assert_eq!(proc_cgroup("0::/a\r\n1:cpu:/b\r")[1].path, "/b\r");
    }

    #[test]
    fn hybrid_system_locates_v1_controllers_and_the_empty_v2() {
        let located = locate(&mountinfo(HYBRID_MOUNTINFO), &proc_cgroup(HYBRID_CGROUP));
        assert_eq!(
            located.v1(Controller::Memory),
            Some(Path::new("/sys/fs/cgroup/memory/process_api/69f9542b"))
        );
        assert_eq!(
            located.v1(Controller::Pids),
            Some(Path::new("/sys/fs/cgroup/pids"))
        );
        assert_eq!(
            located.v1(Controller::Cpu),
            Some(Path::new("/sys/fs/cgroup/cpu"))
        );
        assert_eq!(
            located.v2.as_deref(),
            Some(Path::new("/sys/fs/cgroup/unified"))
        );
    }

    #[test]
    fn co_mounted_v1_controllers_share_a_directory() {
        let mounts = mountinfo(
            "1 0 0:1 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
             2 0 0:2 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
        );
        let located = locate(&mounts, &proc_cgroup("3:cpu,cpuacct:/a\n2:memory:/b\n"));
        assert_eq!(
            located.v1(Controller::Cpu),
            Some(Path::new("/sys/fs/cgroup/cpu,cpuacct/a"))
        );
        assert_eq!(
            located.v1(Controller::Memory),
            Some(Path::new("/sys/fs/cgroup/memory/b"))
        );
        assert_eq!(located.v1(Controller::Pids), None);
        assert_eq!(located.v2, None);
    }

    #[test]
    fn v2_only_system_locates_the_unified_cgroup() {
        let mounts = mountinfo(
            "25 21 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n",
        );
        let located = locate(
            &mounts,
            &proc_cgroup("0::/user.slice/user-1000.slice/session-2.scope\n"),
        );
        assert_eq!(
            located.v2.as_deref(),
            Some(Path::new(
                "/sys/fs/cgroup/user.slice/user-1000.slice/session-2.scope"
            ))
        );
        assert_eq!(located.v1, [None, None, None]);
    }

    #[test]
    fn a_mount_of_part_of_the_hierarchy_is_followed_or_refused() {
        // A container that sees its own cgroup at the mount point.
        let mounts =
            mountinfo("1 0 0:1 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n");
        let inside = locate(&mounts, &proc_cgroup("4:memory:/docker/abc/sub\n"));
        assert_eq!(
            inside.v1(Controller::Memory),
            Some(Path::new("/sys/fs/cgroup/memory/sub"))
        );
        let exact = locate(&mounts, &proc_cgroup("4:memory:/docker/abc\n"));
        assert_eq!(
            exact.v1(Controller::Memory),
            Some(Path::new("/sys/fs/cgroup/memory"))
        );
        // A cgroup outside what the mount shows, or a mere name prefix.
        let outside = locate(&mounts, &proc_cgroup("4:memory:/other\n"));
        assert_eq!(outside.v1(Controller::Memory), None);
        let prefix = locate(&mounts, &proc_cgroup("4:memory:/docker/abcd\n"));
        assert_eq!(prefix.v1(Controller::Memory), None);
    }

    #[test]
    fn system_without_cgroups_locates_nothing() {
        let mounts = mountinfo("22 1 0:20 / /proc rw - proc proc rw\n");
        assert_eq!(locate(&mounts, &[]), Located::default());
        assert_eq!(locate(&mounts, &proc_cgroup("0::/\n")), Located::default());
        assert_eq!(locate(&[], &proc_cgroup(HYBRID_CGROUP)), Located::default());
    }

    #[test]
    fn start_time_is_field_22_counted_after_the_command() {
        let stat = "20099 (cat) R 20093 20093 19697 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 924781 3133440 415";
        assert_eq!(start_time(stat), Some(924781));
        let odd = "7 (a) b) c) S 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 42 0 0";
        assert_eq!(start_time(odd), Some(42));
        assert_eq!(start_time("7 (short) S 1"), None);
        assert_eq!(start_time(""), None);
    }

    #[test]
    fn base_names_round_trip_and_others_are_ignored() {
        assert_eq!(parse_base_name(&base_name(4242, 99)), Some((4242, 99)));
        for other in [
            "", "procs", "4242", "x.1", "1.x", "-3.5", "0.5", "1.2.3", "+3.5", "03.5", "3.+5",
            "3.05", "1.00",
        ] {
            assert_eq!(parse_base_name(other), None, "{other}");
        }
    }

    #[test]
    fn keyed_files_give_the_value_of_a_key() {
        let oom_control = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed(oom_control, "oom_kill"), Some(3));
        assert_eq!(keyed(oom_control, "oom"), None);
        let events = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(keyed(events, "oom_kill"), Some(2));
        assert_eq!(keyed(events, "max"), Some(12));
        assert_eq!(keyed("", "oom_kill"), None);
        assert_eq!(keyed("oom_kill x\n", "oom_kill"), None);
    }

    #[test]
    fn controller_lists_and_pid_lists() {
        assert_eq!(
            controller_list("cpuset cpu io memory hugetlb pids rdma misc\n"),
            [Controller::Cpu, Controller::Memory, Controller::Pids]
        );
        assert!(controller_list("\n").is_empty());
        assert_eq!(pids("12\n0\n345\n"), [12, 345]);
        assert!(pids("").is_empty());
    }
}
