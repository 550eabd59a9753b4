//! Tests that make real cgroups where this process may (as root, or in a
//! delegated cgroup); elsewhere they say why they skip. They never move the
//! test process: a `sleep` started with `std::process::Command` is what
//! enters a group.

use std::fs;
use std::path::Path;
use std::process::{Child, Command};

use nix::unistd::Pid;

use super::*;

/// A directory name of this test's own for the bases, so that tests (and
/// real trees) don't meet.
fn test_dir(test: &str) -> String {
    format!("supertrees-test-{}-{test}", std::process::id())
}

fn start_time_of(pid: i32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    parse::start_time(&stat).expect("start time")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .trim()
        .to_owned()
}

/// Removes the test's `dir_name` directory next to each base.
fn remove_test_dir(h: &Hierarchies) {
    for place in h.distinct() {
        if let Some(parent) = place.base.parent() {
            let _ = dir::remove_tree(parent);
        }
    }
}

fn sleeper() -> Child {
    Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep")
}

/// Whether `child` was killed by SIGKILL (reaping it).
fn was_killed(mut child: Child) -> bool {
    use std::os::unix::process::ExitStatusExt;
    child.wait().expect("wait").signal() == Some(9)
}

#[test]
fn a_group_holds_its_limits_and_is_removed_with_what_is_in_it() {
    let name = test_dir("groups");
    let h = detect_in(&name, "base");
    if h.place(Controller::Memory).is_none() && h.place(Controller::Pids).is_none() {
        eprintln!(
            "skipped: no memory or pids cgroup can be made here (not root, no delegated cgroup, \
             or no such controller): {h:?}"
        );
        remove_test_dir(&h);
        return;
    }
    eprintln!("cgroups used: {h:?}");
    let limits = Limits::new().memory(32 << 20).processes(8).cpu(0.5);
    let group = h.create(None, "sup", &limits).expect("create");
    assert!(!group.is_empty());
    for d in group.own() {
        assert!(d.path.join(LEAF).is_dir(), "{}", d.path.display());
        assert_eq!(d.path.parent(), Some(d.base.as_path()));
    }
    if let Some(d) = group.own_with(Controller::Memory) {
        let file = match d.version {
            Version::V1 => "memory.limit_in_bytes",
            Version::V2 => "memory.max",
        };
        assert_eq!(read(&d.path.join(file)), (32u64 << 20).to_string());
        assert!(group.memory_usage().is_some());
        assert_eq!(group.oom_kills(), 0);
    }
    if let Some(d) = group.own_with(Controller::Pids) {
        assert_eq!(read(&d.path.join("pids.max")), "8");
        assert_eq!(group.processes(), Some(0));
    }
    if let Some(d) = group.own_with(Controller::Cpu) {
        match d.version {
            Version::V1 => {
                assert_eq!(read(&d.path.join("cpu.cfs_period_us")), "100000");
                assert_eq!(read(&d.path.join("cpu.cfs_quota_us")), "50000");
            }
            Version::V2 => assert_eq!(read(&d.path.join("cpu.max")), "50000 100000"),
        }
    }

    // A limited supervisor below, limiting memory only: made under the
    // group in the memory hierarchy; in the others its processes stay in
    // the group's.
    let child = h
        .create(Some(&group), "child", &Limits::new().memory(16 << 20))
        .expect("create child");
    let memory = group.own_with(Controller::Memory).map(|d| d.path.clone());
    for d in &child.dirs {
        match (&memory, d.own) {
            (Some(m), true) => assert_eq!(d.path, m.join("child")),
            (_, false) => assert!(group.own().any(|g| g.path == d.path)),
            (None, true) => panic!("a memory group without a memory controller"),
        }
    }

    // A process entered into both: it is in the leaves.
    let sleeping = sleeper();
    let pid = Pid::from_raw(sleeping.id() as i32);
    group.enter(pid).expect("enter");
    child.enter(pid).expect("enter child");
    for d in child.own() {
        let procs = read(&d.path.join(LEAF).join("cgroup.procs"));
        assert!(procs.lines().any(|p| p == pid.to_string()), "{procs}");
    }
    if group.own_with(Controller::Pids).is_some() {
        assert_eq!(group.processes(), Some(1));
    }

    // Removing the group kills it and removes the child's group too.
    group.remove();
    assert!(was_killed(sleeping));
    for d in group.own() {
        assert!(!d.path.exists(), "{} left", d.path.display());
    }
    // Removing again is harmless.
    group.remove();
    child.remove();

    h.remove_base();
    for place in h.distinct() {
        assert!(!place.base.exists(), "{} left", place.base.display());
    }
    remove_test_dir(&h);
}

/// Whether the process `pid` is listed in the `cgroup.procs` at `procs`,
/// within 5 s.
fn comes_into(procs: &Path, pid: u32) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if read(procs).lines().any(|p| p == pid.to_string()) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

#[test]
fn another_user_enters_through_the_descriptor_root_opened_never_by_path() {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;

    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: switching users needs root");
        return;
    }
    let name = test_dir("entry");
    let h = detect_in(&name, "base");
    if h.place(Controller::Memory).is_none() {
        eprintln!("skipped: no memory cgroup can be made here: {h:?}");
        remove_test_dir(&h);
        return;
    }
    let limits = Limits::new().memory(32 << 20);
    let group = h.create(None, "sup", &limits).expect("create");
    let other = h.create(None, "other", &limits).expect("create other");
    assert!(group.entries_held().expect("held").is_empty());
    group.hold_entry().expect("hold");
    let held = group.entries_held().expect("held");
    assert_eq!(held.len(), group.own().count());
    let leaf = |g: &Group| Group::procs(g.own_with(Controller::Memory).expect("memory dir"));
    let (mine, theirs) = (leaf(&group), leaf(&other));
    // The files stay root's, writable by no one else.
    for procs in [&mine, &theirs] {
        let meta = fs::metadata(procs).expect("stat");
        assert_eq!(
            (meta.uid(), meta.mode() & 0o022),
            (0, 0),
            "{}",
            procs.display()
        );
    }
    let nobody = |script: &str| {
        let mut sh = Command::new("sh");
        sh.args(["-c", script]).uid(65534).gid(65534);
        sh
    };
    // As nobody, by path: refused, in either leaf.
    for procs in [&mine, &theirs] {
        let status = nobody(&format!("echo $$ > {}", procs.display()))
            .stderr(Stdio::null())
            .status()
            .expect("sh");
        assert!(!status.success(), "nobody wrote {}", procs.display());
    }
    // As nobody, through the descriptor (its stdout): in.
    let (path, file) = held
        .into_iter()
        .find(|(path, _)| *path == mine)
        .expect("the memory leaf's descriptor");
    let entered = nobody("echo $$ && exec sleep 30")
        .stdout(Stdio::from(file))
        .spawn()
        .expect("sh");
    assert!(comes_into(&path, entered.id()), "not in {}", path.display());

    // Made again, the group has new files: the old descriptor is opened
    // again, and a process enters the new group through it.
    group.remove();
    assert!(was_killed(entered));
    let again = h.create(None, "sup", &limits).expect("create again");
    assert!(again.is_at(&group));
    let stale = group.entries_held().expect("held");
    let sleeping = sleeper();
    let pid = Pid::from_raw(sleeping.id() as i32);
    let err = group.enter(pid).expect_err("through the old descriptor");
    assert!(
        err.to_string().contains(&mine.display().to_string()),
        "{err}"
    );
    group.hold_entry().expect("hold again");
    let renewed = group.entries_held().expect("held");
    assert_eq!(renewed.len(), stale.len());
    group.enter(pid).expect("through the new descriptor");
    assert!(comes_into(&mine, sleeping.id()));
    group.drop_entry();
    assert!(group.entries_held().expect("held").is_empty());

    group.remove();
    assert!(was_killed(sleeping));
    other.remove();
    h.remove_base();
    remove_test_dir(&h);
}

#[test]
fn a_group_without_cgroup_limits_has_no_directory() {
    let h = Hierarchies::none();
    let group = h
        .create(None, "sup", &Limits::new().memory(1 << 20).open_files(64))
        .expect("create");
    assert!(group.is_empty());
    group.enter(nix::unistd::getpid()).expect("enter nothing");
    assert_eq!(group.oom_kills(), 0);
    assert_eq!(group.memory_usage(), None);
    assert_eq!(group.processes(), None);
    group.remove();
    for bad in ["", ".", "..", "procs", "a/b"] {
        let err = h.create(None, bad, &Limits::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}

#[test]
fn detect_removes_the_bases_of_roots_that_are_gone() {
    let name = test_dir("stale");
    let me = std::process::id() as i32;
    let mine = parse::base_name(me, start_time_of(me));
    let h = detect_in(&name, &mine);
    let Some(place) = h.distinct().first().map(|p| (*p).clone()) else {
        eprintln!("skipped: no cgroup can be made here (not root, or no controller): {h:?}");
        remove_test_dir(&h);
        return;
    };
    let dir = place.base.parent().expect("parent").to_owned();
    // A root that is gone (no such pid: above the kernel's PID_MAX_LIMIT),
    // with a process left in a group below its base; a pid that is reused
    // (ours, another start time); a live root (pid 1); a stranger.
    let gone = dir.join(parse::base_name(4_194_305, 7));
    let reused = dir.join(parse::base_name(me, start_time_of(me) + 1));
    let live = dir.join(parse::base_name(1, start_time_of(1)));
    let stranger = dir.join("not-a-base");
    for d in [&gone.join("sup").join(LEAF), &reused, &live, &stranger] {
        fs::create_dir_all(d).expect("mkdir");
    }
    let left = sleeper();
    dir::write(
        &gone.join("sup").join(LEAF).join("cgroup.procs"),
        &left.id().to_string(),
    )
    .expect("move the sleeper");

    let again = detect_in(&name, &mine);
    assert_eq!(again, h);
    assert!(
        was_killed(left),
        "the process left in a stale base is killed"
    );
    assert!(!gone.exists(), "stale base removed");
    assert!(!reused.exists(), "base of a reused pid removed");
    assert!(live.exists(), "a live root's base is kept");
    assert!(stranger.exists(), "other directories are left alone");
    assert!(place.base.exists(), "our own base is kept");

    for d in [&live, &stranger] {
        fs::remove_dir(d).expect("rmdir");
    }
    h.remove_base();
    remove_test_dir(&h);
}

#[test]
fn oom_kills_count_the_processes_killed_at_the_memory_limit() {
    use std::io::Write;
    use std::process::Stdio;

    let name = test_dir("oom");
    let h = detect_in(&name, "base");
    if h.place(Controller::Memory).is_none() {
        eprintln!("skipped: no memory cgroup can be made here: {h:?}");
        remove_test_dir(&h);
        return;
    }
    let group = h
        .create(None, "sup", &Limits::new().memory(16 << 20))
        .expect("create");
    // A shell that, once in the group, runs `tail` on an endless line: it
    // keeps all of it in memory until the kernel kills it.
    let mut hog = Command::new("sh")
        .args(["-c", "read _; exec tail -n1 /dev/zero"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    group.enter(Pid::from_raw(hog.id() as i32)).expect("enter");
    hog.stdin
        .take()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("write");
    assert!(was_killed(hog), "killed by the OOM killer");
    assert_eq!(group.oom_kills(), 1);
    group.remove();
    h.remove_base();
    remove_test_dir(&h);
}

#[test]
fn detect_makes_the_base_named_after_this_process() {
    let h = detect();
    let Some(place) = h.distinct().first().map(|p| (*p).clone()) else {
        eprintln!("skipped: no cgroup can be made here (not root, or no controller): {h:?}");
        return;
    };
    let me = std::process::id() as i32;
    assert_eq!(
        place.base.file_name().and_then(|n| n.to_str()),
        Some(parse::base_name(me, start_time_of(me)).as_str())
    );
    assert_eq!(
        place.base.parent().and_then(Path::file_name),
        Some(std::ffi::OsStr::new(DIR))
    );
    h.remove_base();
    for place in h.distinct() {
        assert!(!place.base.exists(), "{} left", place.base.display());
    }
}
