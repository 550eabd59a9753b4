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
    /// both supervisors.
    pub fn collect(root: &Supervisor) -> Result<Vec<Declared>, Error> {
        let names: Vec<Declared> = root
            .supervisors("root")
            .into_iter()
            .flat_map(|(path, sup)| declared_by(sup, &path))
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
