//! The names a tree declares — mailboxes and dynamic-children templates —
//! each with the supervisor that declared it (the process engine's socket
//! pairs behind each are `supertrees-engine`'s `Directory`).

use super::Kind;
use crate::tree::Supervisor;
use crate::Error;

/// One name declared by a supervisor of the tree.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct Declared {
    pub name: String,
    /// The path of the supervisor that declared it, e.g. `root/1`.
    pub owner: String,
    pub kind: Kind,
    /// For a template: the type name of its argument.
    pub argument: &'static str,
}

impl Declared {
    /// Every name the tree below `root` declares, with the supervisor that
    /// declared it. Names are unique in the tree.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateName`] naming the first name declared twice, and
    /// both supervisors; [`Error::InvalidName`] for a template whose name
    /// can not name a child (its children's paths are `<name>#<id>`, and
    /// figures count them under `<supervisor>/<name>`): not one a child of
    /// its supervisor has, nor digits only (a position's), nor `host`.
    pub fn collect(root: &Supervisor) -> Result<Vec<Declared>, Error> {
        let supervisors = root.supervisors("root");
        for (path, sup) in &supervisors {
            for template in &sup.templates {
                let named = sup.names.iter().flatten().any(|n| *n == template.name);
                let reason = crate::control::bad_child_name(&template.name).or(named.then_some(
                    "a child of its supervisor has that name: their paths would be one",
                ));
                if let Some(reason) = reason {
                    return Err(Error::InvalidName {
                        name: template.name.clone(),
                        path: path.clone(),
                        reason,
                    });
                }
            }
        }
        let names: Vec<Declared> = supervisors
            .iter()
            .flat_map(|(path, sup)| declared_by(sup, path))
            .collect();
        let mut seen: std::collections::HashMap<&str, &Declared> = std::collections::HashMap::new();
        for declared in &names {
            if let Some(first) = seen.insert(&declared.name, declared) {
                return Err(Error::DuplicateName {
                    name: declared.name.clone(),
                    first: first.owner.clone(),
                    second: declared.owner.clone(),
                });
            }
        }
        Ok(names)
    }
}

/// The names supervisor `sup`, at `path`, declares.
fn declared_by(sup: &Supervisor, path: &str) -> Vec<Declared> {
    let mailboxes = sup.mailboxes.iter().map(|name| Declared {
        name: name.clone(),
        owner: path.to_owned(),
        kind: Kind::Mailbox,
        argument: "",
    });
    let templates = sup.templates.iter().map(|t| Declared {
        name: t.name.clone(),
        owner: path.to_owned(),
        kind: Kind::Template,
        argument: t.argument,
    });
    mailboxes.chain(templates).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::Noop;
    use crate::Supertree;

    #[test]
    fn a_template_whose_name_can_not_be_a_path_segment_is_refused() {
        for (name, reason) in [
            ("my.job", "holds ASCII letters"),
            ("a/b", "holds ASCII letters"),
            ("", "1 to 64"),
            (&"x".repeat(65), "1 to 64"),
        ] {
            let tree = crate::tree::TreeParts::from(
                Supertree::new().add_supervisor(|s| s.add_dynamic(name, |_: u8| Noop)),
            );
            match Declared::collect(&tree.root) {
                Err(Error::InvalidName {
                    name: n,
                    path,
                    reason: r,
                }) => {
                    assert_eq!((n.as_str(), path.as_str()), (name, "root/0"));
                    assert!(r.contains(reason), "{r}");
                }
                other => panic!("{name:?}: {other:?}"),
            }
        }
        let ok = crate::tree::TreeParts::from(
            Supertree::new().add_supervisor(|s| s.add_dynamic(&"a-Z_9".repeat(12), |_: u8| Noop)),
        );
        assert!(Declared::collect(&ok.root).is_ok());
    }

    #[test]
    fn names_are_collected_with_their_supervisors_and_must_be_unique() {
        let tree = crate::tree::TreeParts::from(
            Supertree::new()
                .with_mailbox("a")
                .add_supervisor(|s| s.with_mailbox("b"))
                .add_supervisor(|s| s.add_dynamic("c", |_: u8| Noop)),
        );
        let names = Declared::collect(&tree.root).expect("unique");
        let owners: Vec<(&str, &str, Kind)> = names
            .iter()
            .map(|d| (d.name.as_str(), d.owner.as_str(), d.kind))
            .collect();
        assert_eq!(
            owners,
            [
                ("a", "root", Kind::Mailbox),
                ("b", "root/0", Kind::Mailbox),
                ("c", "root/1", Kind::Template)
            ]
        );
        assert_eq!(names[2].argument, "u8");

        let tree = crate::tree::TreeParts::from(
            Supertree::new()
                .with_mailbox("a")
                .add_supervisor(|s| s.add_dynamic("a", |_: u8| Noop)),
        );
        let err = Declared::collect(&tree.root).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the name \"a\" is declared twice, by root and by root/0: names of mailboxes and templates are unique in a tree"
        );
    }
}
