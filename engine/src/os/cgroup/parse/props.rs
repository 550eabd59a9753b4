//! Property tests of the cgroup file parsers: any text is survived and
//! read as the kernel's formats define ([`any_text`]); lines generated in
//! those formats, with the kernel's escapes, give back the fields they were
//! made of; the parsers with an inverse round trip.

use std::path::PathBuf;

use proptest::prelude::{any, prop, prop_assert_eq, prop_oneof, proptest, Just};
use proptest::strategy::Strategy as Gen;

use super::check::{any_text, unescaped};
use super::*;
use crate::testing::proptest_config as config;

/// Text the kernel may write in a path or a cgroup name: any characters
/// (`\r` and `:` among them), often those `mountinfo` escapes, and
/// backslashes before digits.
fn a_name() -> impl Gen<Value = String> {
    prop_oneof!["[a-z/]{0,12}", "[ \t\n\r\\\\0-9a-z/:+\\-]{0,16}", ".{0,16}"]
}

/// What the kernel writes for `field` in `/proc/self/mountinfo` (its
/// `mangle`): space, tab, newline and backslash as a backslash and three
/// octal digits.
fn escape(field: &str) -> String {
    let mut out = String::new();
    for c in field.chars() {
        if matches!(c, ' ' | '\t' | '\n' | '\\') {
            out.push_str(&format!("\\{:03o}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Text like `mountinfo`'s escapes, and like them but for a sign, a digit
/// that is not octal, too few digits or a value over a byte.
const ESCAPE_LIKE: &str = "(\\\\[+\\-]?[0-9]{0,3}|[0-9a +\\-]){0,8}";

/// A path: `/` and names.
fn a_path() -> impl Gen<Value = String> {
    prop::collection::vec(a_name(), 0..4).prop_map(|names| format!("/{}", names.join("/")))
}

/// A word of a mount's options.
fn a_word() -> impl Gen<Value = String> {
    "[a-z0-9_=.]{1,10}"
}

/// A mount and its line in `/proc/self/mountinfo`, as proc(5) has it: ids,
/// `major:minor`, root, mount point, options, optional fields, `-`, type,
/// source, super options; root, mount point and source escaped.
fn a_mount() -> impl Gen<Value = (Mount, String)> {
    (
        (any::<u32>(), any::<u32>(), any::<u16>(), any::<u16>()),
        a_path(),
        a_path(),
        prop::collection::vec(a_word(), 1..4),
        prop::collection::vec(
            prop_oneof![
                (1u32..1000).prop_map(|n| format!("shared:{n}")),
                (1u32..1000).prop_map(|n| format!("master:{n}")),
                Just("unbindable".to_owned()),
            ],
            0..3,
        ),
        "[a-z0-9]{1,8}(\\.[a-z]{1,6})?",
        prop_oneof![
            Just("none".to_owned()),
            a_name().prop_filter("empty", |s| !s.is_empty())
        ],
        prop::collection::vec(a_word(), 1..5),
    )
        .prop_map(
            |(
                (id, parent, major, minor),
                root,
                point,
                options,
                optional,
                fstype,
                source,
                super_options,
            )| {
                let mut fields = vec![
                    id.to_string(),
                    parent.to_string(),
                    format!("{major}:{minor}"),
                    escape(&root),
                    escape(&point),
                    options.join(","),
                ];
                fields.extend(optional);
                fields.extend([
                    "-".to_owned(),
                    fstype.clone(),
                    escape(&source),
                    super_options.join(","),
                ]);
                let mount = Mount {
                    root,
                    mount_point: PathBuf::from(point),
                    fstype,
                    super_options,
                };
                (mount, fields.join(" "))
            },
        )
}

/// A membership and its line in `/proc/self/cgroup`: `id:controllers:path`,
/// the path as it is (cgroups(7) escapes nothing in it).
fn a_membership() -> impl Gen<Value = (Membership, String)> {
    (
        any::<u32>(),
        prop::collection::vec("[a-z_=]{1,8}", 0..4),
        a_path().prop_filter("a newline ends the line", |p| !p.contains('\n')),
    )
        .prop_map(|(id, controllers, path)| {
            let line = format!("{id}:{}:{path}", controllers.join(","));
            (
                Membership {
                    id,
                    controllers,
                    path,
                },
                line,
            )
        })
}

/// Lines joined, with or without a last newline.
fn joined(lines: &[String], last_newline: bool) -> String {
    let mut text = lines.join("\n");
    if last_newline && !lines.is_empty() {
        text.push('\n');
    }
    text
}

/// Text of every kind: any characters, or lines of the files, whole or
/// cut, mixed with others.
fn any_kind_of_text() -> impl Gen<Value = String> {
    let line = prop_oneof![
        ".{0,60}",
        a_mount().prop_map(|(_, line)| line),
        a_membership().prop_map(|(_, line)| line),
        (a_mount(), any::<prop::sample::Index>()).prop_map(|((_, line), at)| {
            let mut cut = at.index(line.len() + 1);
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line[..cut].to_owned()
        }),
        "[0-9 .:()+\\-a-z\\\\]{0,40}",
    ];
    prop_oneof![
        ".{0,200}",
        "[0-9+\\-.]{1,12}",
        ESCAPE_LIKE,
        prop::collection::vec(line, 0..10).prop_map(|lines| lines.join("\n")),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Any text: no parser panics, and each reads only what the text says
    /// (see `check::any_text`).
    #[test]
    fn any_text_is_read_for_what_it_says(text in any_kind_of_text()) {
        any_text(&text);
    }

    /// `mountinfo` lines as the kernel writes them (optional fields,
    /// escaped spaces, tabs, newlines and backslashes in the root, the
    /// mount point and the source) give back their mounts, in order.
    #[test]
    fn mountinfo_gives_back_the_mounts_of_its_lines(
        mounts in prop::collection::vec(a_mount(), 0..8),
        last_newline in any::<bool>(),
    ) {
        let (mounts, lines): (Vec<Mount>, Vec<String>) = mounts.into_iter().unzip();
        prop_assert_eq!(mountinfo(&joined(&lines, last_newline)), mounts);
    }

    /// `/proc/self/cgroup` lines give back their memberships, in order,
    /// whatever the path holds (colons, `\r`, spaces).
    #[test]
    fn proc_cgroup_gives_back_the_memberships_of_its_lines(
        memberships in prop::collection::vec(a_membership(), 0..8),
        last_newline in any::<bool>(),
    ) {
        let (memberships, lines): (Vec<Membership>, Vec<String>) = memberships.into_iter().unzip();
        prop_assert_eq!(proc_cgroup(&joined(&lines, last_newline)), memberships);
    }

    /// A cgroup below what a mount shows is located below its mount point,
    /// for v2 and for each v1 controller the mount's options name; one
    /// whose path merely starts with the same characters is not.
    #[test]
    fn a_cgroup_is_located_below_its_mount(
        (mount, line) in a_mount().prop_filter("a newline in the cgroup's path", |(m, _)| !m.root.contains('\n')),
        below in prop::collection::vec("[a-z0-9._-]{1,8}", 0..3),
        sibling in "[a-z0-9._-]{1,8}",
        v2 in any::<bool>(),
        controller in prop_oneof![Just(Controller::Memory), Just(Controller::Pids), Just(Controller::Cpu)],
    ) {
        let root = mount.root.trim_end_matches('/');
        let line = if v2 {
            line.replace(&format!(" - {} ", mount.fstype), " - cgroup2 ")
        } else {
            let line = line.replace(&format!(" - {} ", mount.fstype), " - cgroup ");
            format!("{line},{}", controller.name())
        };
        let locate_path = |path: &str| {
            let membership = if v2 {
                format!("0::{path}")
            } else {
                format!("4:{}:{path}", controller.name())
            };
            let located = locate(&mountinfo(&line), &proc_cgroup(&membership));
            if v2 {
                located.v2
            } else {
                located.v1(controller).map(Path::to_owned)
            }
        };
        let dir = below.iter().fold(mount.mount_point.clone(), |dir, name| dir.join(name));
        prop_assert_eq!(locate_path(&format!("{root}/{}", below.join("/"))), Some(dir));
        if !root.is_empty() {
            prop_assert_eq!(locate_path(&format!("{root}{sibling}")), None);
        }
    }

    /// The start time is field 22 of a `stat` line, whatever the command
    /// name (spaces and parentheses included); `None` without it.
    #[test]
    fn start_time_is_field_22(
        pid in 1i32..=i32::MAX,
        comm in prop_oneof!["[a-z ()]{0,16}", ".{0,16}"],
        state in "[RSDZTtXI]",
        fields in prop::collection::vec(any::<u64>(), 0..30),
    ) {
        let mut stat = format!("{pid} ({comm}) {state}");
        for field in &fields {
            stat.push_str(&format!(" {field}"));
        }
        stat.push('\n');
        // `fields` holds field 4 on.
        prop_assert_eq!(start_time(&stat), fields.get(22 - 4).copied());
    }

    /// A base directory's name gives back its root's pid and start time.
    #[test]
    fn base_names_round_trip(pid in 1i32..=i32::MAX, start in any::<u64>()) {
        prop_assert_eq!(parse_base_name(&base_name(pid, start)), Some((pid, start)));
    }

    /// Only a base directory's name is taken for one: any name parsed is the
    /// name of what it parses to (no sign, no leading zero).
    #[test]
    fn only_base_names_are_parsed(name in prop_oneof!["[0-9+\\-.]{0,12}", "0*[1-9][0-9]{0,4}\\.\\+?0*[0-9]{1,4}", ".{0,12}"]) {
        if let Some((pid, start)) = parse_base_name(&name) {
            prop_assert_eq!(base_name(pid, start), name);
        }
    }

    /// `unescape` decodes a backslash and three octal digits, and nothing
    /// else: not a sign, not fewer digits, not a value over a byte.
    #[test]
    fn unescape_decodes_octal_escapes_only(field in ESCAPE_LIKE) {
        prop_assert_eq!(unescape(&field), unescaped(&field));
    }

    /// `unescape` undoes the kernel's escapes, whatever the text.
    #[test]
    fn unescape_undoes_the_kernels_escapes(field in a_name()) {
        prop_assert_eq!(unescape(&escape(&field)), field);
    }

    /// A flat keyed file gives the value of a key's first line.
    #[test]
    fn keyed_gives_the_value_of_the_first_line_of_a_key(
        entries in prop::collection::vec(("[a-z_]{1,3}", any::<u64>()), 0..8),
        key in "[a-z_]{1,3}",
    ) {
        let text: String = entries.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
        let first = entries.iter().find(|(k, _)| *k == key).map(|&(_, v)| v);
        prop_assert_eq!(keyed(&text, &key), first);
    }

    /// A controller list gives the controllers this module uses, in the
    /// file's order, whatever separates them.
    #[test]
    fn controller_lists_keep_the_controllers_used(
        names in prop::collection::vec(
            prop::sample::select(&["cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc", "cpuacct"][..]),
            0..8,
        ),
        separator in prop::sample::select(&[" ", "\n", "  ", "\t"][..]),
    ) {
        let text = names.join(separator);
        let used: Vec<Controller> = names.iter().filter_map(|&n| Controller::from_name(n)).collect();
        prop_assert_eq!(controller_list(&text), used);
    }

    /// A `cgroup.procs` file gives its pids but 0 (and nothing negative).
    #[test]
    fn pid_lists_give_their_positive_pids(listed in prop::collection::vec(prop_oneof![Just(0i32), any::<i32>()], 0..12)) {
        let text: String = listed.iter().map(|p| format!("{p}\n")).collect();
        let positive: Vec<i32> = listed.into_iter().filter(|&p| p > 0).collect();
        prop_assert_eq!(pids(&text), positive);
    }
}
