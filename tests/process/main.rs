//! Process-level tests of the fork-per-supervisor engine: real trees, real
//! `fork`, real signals.
//!
//! This is a `harness = false` test, and one binary plays two parts:
//!
//! * **Scenario.** With `SUPERTREES_SCENARIO=<name>` in its environment the
//!   binary runs that one scenario in its own, still single-threaded process:
//!   it prints `root-pid <pid>`, builds a tree, calls `start()` (so this
//!   process becomes the root supervisor and forks the rest of the tree),
//!   prints what `start()` returned, and exits.
//! * **Runner.** Without it, the binary runs every scenario (or those whose
//!   name contains one of the arguments: `cargo test --test process -- NAME`)
//!   one after the other, each as a child process in a process group of its
//!   own, under a timeout. The runner reads the scenario's output, drives it
//!   where the scenario needs it (signals, SIGKILL chaos) and checks its exit
//!   status, its output, and that no process of its group is left behind.
//!
//! libtest runs tests on several threads, and forking a multi-threaded process
//! is exactly what the engine must never do; hence the hand-written runner.
//!
//! The runner makes itself a child subreaper, so the processes of a tree that
//! lose their parent are re-parented to the runner (not to whatever runs as
//! PID 1), and it reaps them itself. A zombie whose parent is still a process
//! of the tree is counted as the tree's fault.
//!
//! Scenario output protocol (one line each, on stdout):
//!
//! * `root-pid <pid>` first;
//! * `start <worker> <pid>` when a worker's future starts (pid of its worker
//!   host) and `dropped <worker> <pid>` when that future is dropped;
//! * `run <worker>` for workers that return at once;
//! * `returned Ok` or `returned Err <kind>: <message>` after `start()`.
//!
//! Environment: `SUPERTREES_CHAOS_SEED` fixes the chaos scenario's random
//! choices (the seed used is printed); `RUST_LOG` sets the scenarios' log
//! filter (default `info`; their stderr is shown for failed scenarios).
//!
//! Layout: this file holds the entry point and the table of scenarios;
//! [`runner`] runs them and checks what every scenario must leave behind;
//! [`scenario`] and [`drive`] hold what the scenario process and the runner
//! share across topics. Each topic module has a `scenario` submodule (the
//! bodies) and a `drive` submodule (the runner's side): [`start`] (seed
//! compatibility and how `start()` ends), [`signals`] (signals and orderly
//! shutdown), [`failures`] (panics, restarts and chaos kills), [`limits`]
//! (resource limits), [`limits_unprivileged`] (limits without cgroups, as
//! another user), [`observe`] (readiness, events, status socket,
//! systemd, IPC faults), [`decisions`] (one decision-maker), [`lifecycle`]
//! (graceful stops, subtasks, start timeouts), [`host_children`] (what
//! workers start), [`hardening`] (failing forks, PID 1, nested shutdowns,
//! SIGHUP/SIGQUIT), [`hardening_root`] (the root under slow callbacks,
//! floods and abuse), [`messages`] (mailboxes and children started at
//! run time), [`listeners`] (listening sockets of the tree: kill storms,
//! systemd socket activation, errors), [`listener_dirs`] (where a Unix
//! listener may go, and its mode), [`listener_faults`] (listeners
//! against their workers' mistakes and through the tree's stop), [`containment`]
//! (watchdogs, users, limits), [`control`] (operators' requests that name a
//! node, `status json` and `watch`), [`limits_unprivileged`] (limits without
//! cgroups, as another user) and [`starved`] (the watchdog under a CPU
//! quota beside CPU hogs: starved is not hung) and [`figures`] (the
//! tree's metrics: a scripted history read back and parsed, bounded series,
//! the user's recorder). A new scenario is a body and a drive in its topic module,
//! and a line in [`SCENARIOS`].
#![deny(unsafe_code)]

use std::time::Duration;

mod abuse;
mod attack20;
mod attack20b;
mod attack22;
mod attack23;
mod boundaries;
mod containment;
mod control;
mod decisions;
mod drive;
mod dynamic;
#[path = "../common/echo_client.rs"]
mod echo_client;
mod failures;
mod figures;
mod hardening;
mod hardening_root;
mod host_children;
mod lifecycle;
mod limits;
mod limits_unprivileged;
mod listener_dirs;
mod listener_faults;
mod listeners;
mod messages;
mod observe;
mod runner;
mod scenario;
mod signals;
mod start;
mod starved;

/// The environment variable that makes this binary run one scenario.
const SCENARIO_VAR: &str = "SUPERTREES_SCENARIO";

fn main() {
    if let Some(dir) = std::env::var_os(attack20::SWAP_VAR) {
        attack20::swapper(dir.as_ref());
    }
    if std::env::var_os(starved::HOG_VAR).is_some() {
        starved::hog();
    }
    if let Some(socket) = std::env::var_os(observe::CLIENT_VAR) {
        observe::client(socket.as_ref());
    }
    match std::env::var(SCENARIO_VAR) {
        Ok(name) => scenario::run(&name),
        // Never the runner in a process given sockets by systemd: that
        // would be a scenario that lost its name on the way.
        Err(_) if std::env::var_os("LISTEN_FDS").is_some() => {
            eprintln!("LISTEN_FDS set but no {SCENARIO_VAR}: not running every scenario");
            std::process::exit(2);
        }
        Err(_) => std::process::exit(runner::main()),
    }
}

/// What the runner does and checks while a scenario (or example) runs.
type Drive = fn(&mut runner::Run) -> Result<(), String>;

/// One scenario: what runs in the scenario process (`body`) and what the
/// runner does and checks meanwhile (`drive`).
struct Scenario {
    name: &'static str,
    body: fn(),
    drive: Drive,
    timeout: Duration,
    /// The command that runs it, when not this binary with
    /// `SUPERTREES_SCENARIO=<name>` (given the path of this binary).
    command: Option<fn(&std::path::Path) -> std::process::Command>,
}

const fn scenario(name: &'static str, body: fn(), drive: Drive, timeout_secs: u64) -> Scenario {
    Scenario {
        name,
        body,
        drive,
        timeout: Duration::from_secs(timeout_secs),
        command: None,
    }
}

/// A scenario run by another command than this binary (which that command
/// runs in turn, with `SUPERTREES_SCENARIO=<name>`).
const fn wrapped(
    name: &'static str,
    body: fn(),
    drive: Drive,
    timeout_secs: u64,
    command: fn(&std::path::Path) -> std::process::Command,
) -> Scenario {
    Scenario {
        command: Some(command),
        ..scenario(name, body, drive, timeout_secs)
    }
}

/// Every scenario, in the order they run.
const SCENARIOS: &[Scenario] = &[
    // Issue 3: seed compatibility and the plain ways `start()` ends.
    scenario("seed", start::scenario::seed, start::drive::seed, 10),
    scenario(
        "once_twice",
        start::scenario::once_twice,
        start::drive::once_twice,
        10,
    ),
    scenario(
        "start_returns",
        start::scenario::start_returns,
        start::drive::start_returns,
        10,
    ),
    scenario(
        "inside_runtime_multi_thread",
        start::scenario::inside_runtime_multi_thread,
        start::drive::inside_runtime,
        10,
    ),
    scenario(
        "inside_runtime_current_thread",
        start::scenario::inside_runtime_current_thread,
        start::drive::inside_runtime,
        10,
    ),
    // Issue 4: robustness of the process engine.
    scenario(
        "kill_root",
        signals::scenario::small_tree,
        signals::drive::kill_root,
        10,
    ),
    scenario(
        "term_root",
        signals::scenario::small_tree,
        signals::drive::term_root,
        15,
    ),
    scenario(
        "int_root",
        signals::scenario::small_tree,
        signals::drive::int_root,
        15,
    ),
    scenario(
        "panic_intensity",
        failures::scenario::panic_intensity,
        failures::drive::panic_intensity,
        10,
    ),
    scenario(
        "panic_intensity_nested",
        failures::scenario::panic_intensity_nested,
        failures::drive::panic_intensity_nested,
        10,
    ),
    scenario(
        "term_host_drops_futures",
        signals::scenario::term_host_drops_futures,
        signals::drive::term_host_drops_futures,
        10,
    ),
    scenario(
        "busy_restarts_stop",
        signals::scenario::busy_restarts_stop,
        signals::drive::busy_restarts_stop,
        10,
    ),
    scenario(
        "chaos",
        failures::scenario::chaos,
        failures::drive::chaos,
        30,
    ),
    scenario(
        "panic_one_for_all_mix",
        failures::scenario::panic_one_for_all_mix,
        failures::drive::panic_one_for_all_mix,
        10,
    ),
    scenario(
        "shutdown_timeout_kills",
        signals::scenario::shutdown_timeout_kills,
        signals::drive::shutdown_timeout_kills,
        10,
    ),
    scenario(
        "resource_limits",
        limits::scenario::resource_limits,
        limits::drive::resource_limits,
        20,
    ),
    // Worker lifecycle: stopping(), spawn(), shutdown(), start_timeout().
    // (`panic_` scenarios make workers panic on purpose.)
    scenario(
        "panic_lifecycle_drain",
        lifecycle::scenario::drain,
        lifecycle::drive::drain,
        10,
    ),
    scenario(
        "panic_lifecycle_ignores_stopping",
        lifecycle::scenario::ignores_stopping,
        lifecycle::drive::ignores_stopping,
        10,
    ),
    scenario(
        "panic_lifecycle_subtask_panic",
        lifecycle::scenario::subtask_panic,
        lifecycle::drive::subtask_panic,
        10,
    ),
    scenario(
        "lifecycle_start_timeout",
        lifecycle::scenario::start_timeout,
        lifecycle::drive::start_timeout,
        10,
    ),
    scenario(
        "lifecycle_stopping_handed_on",
        lifecycle::scenario::stopping_handed_on,
        lifecycle::drive::stopping_handed_on,
        10,
    ),
    // Issue 6: readiness, events, status socket, systemd, IPC faults.
    scenario(
        "observe",
        observe::scenario::observe,
        observe::drive::observe,
        20,
    ),
    scenario(
        "sd_notify",
        observe::scenario::sd_notify,
        observe::drive::sd_notify,
        15,
    ),
    scenario(
        "sd_notify_done",
        observe::scenario::sd_notify_done,
        observe::drive::sd_notify_done,
        10,
    ),
    scenario(
        "panic_in_on_event",
        observe::scenario::panic_in_on_event,
        observe::drive::panic_in_on_event,
        10,
    ),
    scenario(
        "ipc_garbage",
        observe::scenario::ipc_garbage,
        observe::drive::ipc_garbage,
        10,
    ),
    scenario(
        "slow_reader",
        observe::scenario::slow_reader,
        observe::drive::slow_reader,
        20,
    ),
    // Issue 10: one decision-maker.
    scenario(
        "panic_lease_backoff",
        decisions::scenario::lease_backoff,
        decisions::drive::lease_backoff,
        15,
    ),
    scenario(
        "exit_codes",
        decisions::scenario::exit_codes,
        decisions::drive::exit_codes,
        15,
    ),
    scenario(
        "panic_differential",
        decisions::scenario::differential,
        decisions::drive::differential,
        15,
    ),
    scenario(
        "panic_differential_shutdown_order",
        decisions::scenario::differential_shutdown_order,
        decisions::drive::differential_shutdown_order,
        15,
    ),
    // Issue 11: hardening.
    scenario(
        "fork_fails",
        hardening::scenario::fork_fails,
        hardening::drive::fork_fails,
        15,
    ),
    scenario(
        "pipe_fails",
        hardening::scenario::pipe_fails,
        hardening::drive::pipe_fails,
        15,
    ),
    scenario(
        "panic_host_setup",
        hardening::scenario::host_setup_fails,
        hardening::drive::host_setup_fails,
        15,
    ),
    scenario(
        "pid1",
        hardening::scenario::pid1,
        hardening::drive::pid1,
        30,
    ),
    scenario(
        "nested_shutdown",
        hardening::scenario::nested_shutdown,
        hardening::drive::nested_shutdown,
        10,
    ),
    scenario(
        "nested_shutdown_default",
        hardening::scenario::nested_shutdown_default,
        hardening::drive::nested_shutdown_default,
        15,
    ),
    scenario(
        "hup_root",
        hardening::scenario::hangup,
        hardening::drive::hup_root,
        10,
    ),
    scenario(
        "quit_root",
        hardening::scenario::hangup,
        hardening::drive::quit_root,
        10,
    ),
    scenario(
        "hup_group",
        hardening::scenario::hangup,
        hardening::drive::hup_group,
        10,
    ),
    scenario(
        "quit_group",
        hardening::scenario::hangup,
        hardening::drive::quit_group,
        10,
    ),
    // Issue 11: what a worker starts ends with its host.
    scenario(
        "worker_children",
        host_children::scenario::worker_children,
        host_children::drive::worker_children,
        15,
    ),
    scenario(
        "panic_flood",
        host_children::panic_log::scenario::panic_flood,
        host_children::panic_log::drive::panic_flood,
        15,
    ),
    // Issue 11: hardening of the root.
    scenario(
        "slow_on_event",
        hardening_root::scenario::slow_on_event,
        hardening_root::drive::slow_on_event,
        30,
    ),
    scenario(
        "flood_status",
        hardening_root::scenario::flood_status,
        hardening_root::drive::flood_status,
        30,
    ),
    scenario(
        "watchdog_floor",
        hardening_root::scenario::watchdog_floor,
        hardening_root::drive::watchdog_floor,
        15,
    ),
    scenario(
        "status_abuse",
        hardening_root::scenario::status_abuse,
        hardening_root::drive::status_abuse,
        20,
    ),
    scenario(
        "status_dirs",
        hardening_root::scenario::status_dirs,
        hardening_root::drive::status_dirs,
        10,
    ),
    // Containment: watchdogs, users, limits.
    scenario(
        "watchdog_blocked_worker",
        containment::scenario::watchdog_blocked_worker,
        containment::drive::watchdog_blocked_worker,
        10,
    ),
    scenario(
        "watchdog_stopped_host",
        containment::scenario::watchdog_stopped,
        containment::drive::watchdog_stopped_host,
        10,
    ),
    scenario(
        "watchdog_stopped_supervisor",
        containment::scenario::watchdog_stopped,
        containment::drive::watchdog_stopped_supervisor,
        10,
    ),
    scenario(
        "limits_oom",
        containment::scenario::limits_oom,
        containment::drive::limits_oom,
        20,
    ),
    scenario(
        "limits_root_killed",
        containment::scenario::limits_root_killed,
        containment::drive::limits_root_killed,
        15,
    ),
    scenario(
        "limits_subtree_ends",
        containment::scenario::limits_subtree_ends,
        containment::drive::limits_subtree_ends,
        10,
    ),
    scenario(
        "limits_quick",
        containment::scenario::limits_quick,
        containment::drive::limits_quick,
        10,
    ),
    scenario(
        "with_user",
        containment::scenario::with_user,
        containment::drive::with_user,
        10,
    ),
    scenario(
        "limits_user_made_again",
        containment::scenario::limits_user_made_again,
        containment::drive::limits_user_made_again,
        15,
    ),
    scenario(
        "with_user_refused",
        containment::scenario::with_user_refused,
        containment::drive::with_user_refused,
        10,
    ),
    // Starved is not hung: the watchdog under a CPU quota beside hogs.
    scenario(
        "watchdog_starved",
        starved::scenario::starved,
        starved::drive::starved,
        40,
    ),
    scenario(
        "watchdog_starved_still_hung",
        starved::scenario::still_hung,
        starved::drive::still_hung,
        30,
    ),
    scenario(
        "watchdog_busy_host",
        starved::scenario::busy_host,
        starved::drive::busy_host,
        10,
    ),
    // Limits without cgroups, as another user.
    wrapped(
        "unprivileged_limits_refused",
        limits_unprivileged::scenario::refused,
        limits_unprivileged::drive::refused,
        10,
        limits_unprivileged::refused_command,
    ),
    wrapped(
        "unprivileged_limits_oom",
        limits_unprivileged::scenario::oom,
        limits_unprivileged::drive::oom,
        20,
        limits_unprivileged::oom_command,
    ),
    wrapped(
        "panic_unprivileged_limits_oom_backtrace",
        limits_unprivileged::scenario::oom,
        limits_unprivileged::drive::oom,
        20,
        limits_unprivileged::oom_backtrace_command,
    ),
    // Messages between processes and children started at run time.
    scenario("kv", messages::scenario::kv, messages::drive::kv, 10),
    scenario(
        "kv_smol",
        messages::scenario::kv_smol,
        messages::drive::kv,
        10,
    ),
    scenario(
        "duplicate_name",
        messages::scenario::duplicate_name,
        messages::drive::duplicate_name,
        10,
    ),
    scenario(
        "panic_server_restarts",
        messages::scenario::panic_server_restarts,
        messages::drive::panic_server_restarts,
        20,
    ),
    scenario(
        "mailbox_outlives_host",
        messages::scenario::mailbox_outlives_host,
        messages::drive::mailbox_outlives_host,
        20,
    ),
    scenario(
        "mailbox_bounded",
        messages::scenario::mailbox_bounded,
        messages::drive::mailbox_bounded,
        10,
    ),
    scenario(
        "dynamic_children",
        messages::scenario::dynamic_children,
        messages::drive::dynamic_children,
        15,
    ),
    scenario(
        "dynamic_supervisor_gone",
        messages::scenario::dynamic_supervisor_gone,
        messages::drive::dynamic_supervisor_gone,
        30,
    ),
    // Issue 19: children started at run time that can be trusted.
    scenario(
        "dynamic_race",
        dynamic::scenario::dynamic_race,
        dynamic::drive::dynamic_race,
        60,
    ),
    scenario(
        "dynamic_ids_restart",
        dynamic::scenario::dynamic_ids_restart,
        dynamic::drive::dynamic_ids_restart,
        20,
    ),
    scenario(
        "dynamic_ok_ran",
        dynamic::scenario::dynamic_ok_ran,
        dynamic::drive::dynamic_ok_ran,
        20,
    ),
    scenario(
        "status_no_ghosts",
        dynamic::scenario::status_no_ghosts,
        dynamic::drive::status_no_ghosts,
        20,
    ),
    scenario(
        "ready_status",
        dynamic::scenario::ready_status,
        dynamic::drive::ready_status,
        20,
    ),
    scenario(
        "ready_status_events",
        dynamic::scenario::ready_status_events,
        dynamic::drive::ready_status,
        20,
    ),
    // Listening sockets of the tree: kill storms, systemd, errors.
    scenario(
        "listener_kill_storm",
        listeners::scenario::kill_storm,
        listeners::drive::kill_storm,
        90,
    ),
    scenario(
        "listener_kill_storm_unbound",
        listeners::scenario::kill_storm_unbound,
        listeners::drive::kill_storm_unbound,
        90,
    ),
    wrapped(
        "listener_systemd",
        listeners::scenario::systemd,
        listeners::drive::systemd,
        90,
        listeners::drive::systemd_command,
    ),
    scenario(
        "listener_in_use",
        listeners::scenario::in_use,
        listeners::drive::in_use,
        10,
    ),
    scenario(
        "listener_unknown_name",
        listeners::scenario::unknown_name,
        listeners::drive::unknown_name,
        10,
    ),
    scenario(
        "listener_unix",
        listeners::scenario::unix,
        listeners::drive::unix,
        15,
    ),
    scenario(
        "listener_unix_dirs",
        listener_dirs::scenario::unix_dirs,
        listener_dirs::drive::unix_dirs,
        15,
    ),
    // Listeners against their workers' mistakes and through the tree's stop.
    scenario(
        "listener_mistakes_tcp",
        listener_faults::scenario::mistakes_tcp,
        listener_faults::drive::mistakes_tcp,
        60,
    ),
    scenario(
        "listener_mistakes_unix",
        listener_faults::scenario::mistakes_unix,
        listener_faults::drive::mistakes_unix,
        30,
    ),
    scenario(
        "listener_stop_signal",
        listener_faults::scenario::stop_signal,
        listener_faults::drive::stop_signal,
        20,
    ),
    scenario(
        "panic_listener_stop_gave_up",
        listener_faults::scenario::stop_gave_up,
        listener_faults::drive::stop_gave_up,
        20,
    ),
    scenario(
        "listener_stop_races_repair",
        listener_faults::scenario::stop_races_repair,
        listener_faults::drive::stop_races_repair,
        20,
    ),
    wrapped(
        "listener_stop_systemd",
        listener_faults::scenario::stop_systemd,
        listener_faults::drive::stop_systemd,
        20,
        listener_faults::drive::systemd_command,
    ),
    // Issue 20: subtrees as boundaries.
    scenario(
        "boundaries_attack",
        boundaries::scenario::attack_from_another_user,
        boundaries::drive::attack_from_another_user,
        30,
    ),
    scenario(
        "boundaries_own_channel_cut",
        boundaries::scenario::own_channel_cut,
        boundaries::drive::own_channel_cut,
        20,
    ),
    scenario(
        "boundaries_own_channel_cut_writes",
        boundaries::scenario::own_channel_cut_writes,
        boundaries::drive::own_channel_cut_writes,
        20,
    ),
    // Review of issue 20: attacks on boundaries, the watchdog, limits, Unix listeners.
    scenario(
        "attack20_stop_mark",
        attack20::scenario::stop_mark,
        attack20::drive::stop_mark,
        20,
    ),
    scenario(
        "attack20_busy_under_quota",
        attack20::scenario::busy_under_quota,
        attack20::drive::busy_under_quota,
        20,
    ),
    scenario(
        "attack20_deadlock_beside_work",
        attack20::scenario::deadlock_beside_work,
        attack20::drive::deadlock_beside_work,
        20,
    ),
    scenario(
        "attack20_unix_symlink",
        attack20::scenario::unix_symlink,
        attack20::drive::unix_symlink,
        15,
    ),
    scenario(
        "attack20_cgroup_escape",
        attack20::scenario::cgroup_escape,
        attack20::drive::cgroup_escape,
        20,
    ),
    scenario(
        "attack20_mute_host",
        attack20::scenario::mute_host,
        attack20::drive::mute_host,
        15,
    ),
    scenario(
        "attack20_host_signal_pipe",
        attack20::scenario::host_signal_pipe,
        attack20::drive::host_signal_pipe,
        15,
    ),
    scenario(
        "attack20_audit",
        attack20::scenario::audit,
        attack20::drive::audit,
        15,
    ),
    scenario(
        "attack20_nested_users",
        attack20::scenario::nested_users,
        attack20::drive::nested_users,
        15,
    ),
    wrapped(
        "attack20_own_user",
        attack20::scenario::own_user,
        attack20::drive::own_user,
        15,
        attack20::own_user_command,
    ),
    scenario(
        "attack20_tiny_quota",
        attack20::scenario::tiny_quota,
        attack20::drive::tiny_quota,
        40,
    ),
    scenario(
        "attack20_open_files_names",
        attack20::scenario::open_files_names,
        attack20::drive::open_files_names,
        15,
    ),
    wrapped(
        "attack20_forged_oom",
        attack20::scenario::forged_oom,
        attack20::drive::forged_oom,
        15,
        attack20::no_cgroups_command,
    ),
    scenario(
        "attack20_unix_chmod_race",
        attack20::scenario::unix_chmod_race,
        attack20::drive::unix_chmod_race,
        40,
    ),
    // Second review of issue 20: attacks on the fixes of the first.
    scenario(
        "attack20b_signal_pipe_zero",
        attack20b::scenario::signal_pipe_zero,
        attack20b::drive::signal_pipe_zero,
        15,
    ),
    scenario(
        "attack20b_executor_exit",
        attack20b::scenario::executor_exit,
        attack20b::drive::executor_exit,
        15,
    ),
    scenario(
        "attack20b_unix_symlink_chain",
        attack20b::scenario::unix_symlink_chain,
        attack20b::drive::unix_symlink_chain,
        15,
    ),
    wrapped(
        "attack20b_users_without_caps",
        attack20b::scenario::users_without_caps,
        attack20b::drive::users_without_caps,
        15,
        attack20b::no_setuid_command,
    ),
    scenario(
        "attack20b_open_files_entries",
        attack20b::scenario::open_files_entries,
        attack20b::drive::open_files_entries,
        15,
    ),
    scenario(
        "attack20b_reach_more",
        attack20b::scenario::reach_more,
        attack20b::drive::reach_more,
        15,
    ),
    // Abuse: floods, races and hostile peers against the guarantees (issue 19).
    scenario(
        "abuse_terminate_flood",
        abuse::scenario::terminate_flood,
        abuse::drive::terminate_flood,
        60,
    ),
    scenario(
        "abuse_ask_stopped_supervisor",
        abuse::scenario::ask_stopped_supervisor,
        abuse::drive::ask_stopped_supervisor,
        60,
    ),
    scenario(
        "abuse_calls_storm",
        abuse::scenario::calls_storm,
        abuse::drive::calls_storm,
        30,
    ),
    scenario(
        "abuse_handout_race",
        abuse::scenario::handout_race,
        abuse::drive::handout_race,
        20,
    ),
    // Issue 21: a request naming a node reaches the supervisor that owns it.
    scenario(
        "control_restart",
        control::scenario::restart,
        control::drive::restart,
        30,
    ),
    scenario(
        "control_stopped_supervisor",
        control::scenario::stopped,
        control::drive_stopped::stopped,
        30,
    ),
    scenario(
        "control_sigpipe",
        control::scenario::sigpipe,
        control::drive_sigpipe::sigpipe,
        30,
    ),
    // Issue 22: the operator's door.
    scenario(
        "control_operator",
        control::scenario::operator,
        control::drive_operator::operator,
        40,
    ),
    scenario(
        "control_duplicate_name",
        control::scenario::duplicate_name,
        control::drive_operator::duplicate_name,
        20,
    ),
    // Issue 23: the tree's figures, through the status socket and the
    // user's recorder.
    scenario(
        "panic_metrics_history",
        figures::scenario::history,
        figures::drive::history,
        60,
    ),
    scenario(
        "panic_metrics_recorder",
        figures::scenario::recorder,
        figures::drive::recorder,
        40,
    ),
    scenario(
        "attack23_forge_tallies",
        figures::scenario::forge_tallies,
        figures::drive::forge_tallies,
        30,
    ),
    scenario(
        "worker_spans",
        figures::scenario::spans,
        figures::drive::spans,
        20,
    ),
    // Issue 22: the structured status and the stream of events.
    scenario(
        "control_watch",
        control::scenario::watch,
        control::drive_watch::watch,
        30,
    ),
    // attack22: the review of issue 22 (see attack22.rs).
    scenario(
        "attack22_crossed_answers",
        attack22::scenario::crossed_answers,
        attack22::drive::crossed_answers,
        60,
    ),
    scenario(
        "attack22_held_through_supervisor_crash",
        attack22::scenario::api,
        attack22::drive::held_through_supervisor_crash,
        30,
    ),
    scenario(
        "attack22_stopped_subtree_wanted",
        attack22::scenario::api,
        attack22::drive::stopped_subtree_wanted,
        30,
    ),
    scenario(
        "attack22_restart_hung_host_gives_up",
        attack22::scenario::hung_host,
        attack22::drive::restart_hung_host,
        40,
    ),
    // attack23: the review of issue 23 (see attack23.rs).
    scenario(
        "attack23_exact_traffic",
        attack23::scenario::exact_traffic,
        attack23::drive::exact_traffic,
        90,
    ),
    scenario(
        "attack23_spans_escape",
        attack23::scenario::spans_escape,
        attack23::drive::spans_escape,
        30,
    ),
    scenario(
        "attack23_supervisor_killed",
        attack23::scenario::supervisor_killed,
        attack23::drive::supervisor_killed,
        40,
    ),
    scenario(
        "attack23_span_churn",
        attack23::scenario::span_churn,
        attack23::drive::span_churn,
        60,
    ),
    scenario(
        "attack23_scrape_large",
        attack23::scenario::scrape_large,
        attack23::drive::scrape_large,
        120,
    ),
];

/// Examples run as they are, when their binaries have been built, with
/// their timeouts in seconds (`metrics_http` waits for a real Prometheus
/// server's first scrape).
const EXAMPLES: &[(&str, Drive, u64)] = &[
    ("seed_tree", start::drive::seed, 10),
    ("smol_tree", start::drive::example, 10),
    ("custom_executor", messages::examples::custom_executor, 10),
    ("echo", lifecycle::echo_example::drive, 10),
    ("echo_smol", lifecycle::echo_example::drive, 10),
    ("kv", messages::examples::kv, 10),
    ("conn_pool", messages::examples::conn_pool, 10),
    ("listener", listeners::example::drive, 10),
    ("metrics_http", figures::example::metrics_http, 30),
];
