//! What `probe ready` calls ready: every node up, as its kind is when up
//! (workers and supervisors `ready`, worker hosts `running`), or done:
//! `stopped` by its own policy (a one-shot worker that finished, the host
//! of workers that all did) is done, as a supervisor counts a child that
//! ended for good when it says it is ready; so are the nodes an operator
//! stopped (wanted `down`): they are down on purpose, and a tree with one
//! stopped for maintenance still serves. A node starting, restarting,
//! stopping or failed makes the tree not ready.

use crate::doc::{Node, StatusDoc};

/// Why the tree in `doc` is not ready: one line per node that is not up
/// (none: it is ready).
pub fn unready(doc: &StatusDoc) -> Vec<String> {
    if doc.nodes.is_empty() {
        return vec!["the status has no nodes".to_owned()];
    }
    doc.nodes
        .iter()
        .filter(|node| !node.held() && !is_up(node))
        .map(|node| format!("{} ({}) is {}", node.path, node.kind, node.state))
        .collect()
}

/// Whether `node` is up, as its kind is when up, or done.
fn is_up(node: &Node) -> bool {
    match (node.kind.as_str(), node.state.as_str()) {
        // The root is done only when the tree is.
        (_, "stopped") => node.path != "root",
        ("host", state) => matches!(state, "running" | "ready"),
        (_, state) => state == "ready",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::tests::SAMPLE;

    fn doc(nodes: &[(&str, &str, &str, &str)]) -> StatusDoc {
        let nodes: Vec<String> = nodes
            .iter()
            .map(|(path, kind, state, wanted)| {
                format!(r#"{{"path": "{path}", "kind": "{kind}", "state": "{state}", "wanted": "{wanted}"}}"#)
            })
            .collect();
        StatusDoc::parse(&format!(
            r#"{{"schema": 1, "nodes": [{}]}}"#,
            nodes.join(",")
        ))
        .expect("doc")
    }

    #[test]
    fn ready_when_every_node_is_up_or_held_down() {
        assert_eq!(
            unready(&StatusDoc::parse(SAMPLE).expect("doc")),
            Vec::<String>::new()
        );
        let held = doc(&[
            ("root", "supervisor", "ready", "up"),
            ("root/host", "host", "stopped", "down"),
            ("root/0", "worker", "stopping", "down"),
        ]);
        assert!(unready(&held).is_empty());
        // A one-shot worker that finished, and its host: done.
        let done = doc(&[
            ("root", "supervisor", "ready", "up"),
            ("root/host", "host", "stopped", "up"),
            ("root/0", "worker", "stopped", "up"),
        ]);
        assert!(unready(&done).is_empty());
    }

    #[test]
    fn a_node_on_its_way_or_down_by_itself_is_not_ready() {
        for state in [
            "starting",
            "restarting",
            "stopping",
            "failed",
            "running",
            "something new",
        ] {
            let tree = doc(&[
                ("root", "supervisor", "ready", "up"),
                ("root/0", "worker", state, "up"),
            ]);
            assert_eq!(
                unready(&tree),
                vec![format!("root/0 (worker) is {state}")],
                "{state}"
            );
        }
        let host = doc(&[
            ("root", "supervisor", "ready", "up"),
            ("root/host", "host", "starting", "up"),
        ]);
        assert_eq!(
            unready(&host),
            vec!["root/host (host) is starting".to_owned()]
        );
        let root = doc(&[("root", "supervisor", "starting", "up")]);
        assert_eq!(unready(&root).len(), 1);
        let ended = doc(&[("root", "supervisor", "stopped", "up")]);
        assert_eq!(unready(&ended).len(), 1);
        assert_eq!(
            unready(&doc(&[])),
            vec!["the status has no nodes".to_owned()]
        );
    }
}
