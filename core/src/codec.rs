//! How bodies travel to and from a named endpoint.
//!
//! * **Typed bodies** (messages, replies, the arguments of children started
//!   at run time) carry the name of their type, [`type_name`] of the
//!   sending side's, ahead of their postcard encoding: the pair
//!   `(name, value)` as postcard encodes it. One is decoded only as the
//!   type it names, and to its last byte.
//! * **A reply** starts with its kind: an answer (a typed body), or the
//!   server's refusal of a call whose message is of another type than it
//!   takes (the name of the type it takes).
//! * **Requests about dynamic children, and their answers**, are this
//!   crate's own, in plain postcard; they are decoded to their last byte
//!   too.
//!
//! Names are compared as strings: every process of a tree runs the same
//! program (they are forked), so a type has the same name in all of them.
//! A reference is sent as what it refers to ([`wire_name`]), as serde
//! encodes it: a reply of `&T` is a `T`.

use std::any::type_name;
use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::port::MAX_MESSAGE;
use crate::Error;

/// The kind of a reply that answers the call.
const ANSWER: u8 = 0;
/// The kind of a reply that refuses the call's message: of another type
/// than the server's.
const REFUSAL: u8 = 1;

/// Why a typed body was not decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undecoded {
    /// It is of another type: the one it names.
    WrongType(String),
    /// It is not what postcard makes of a value of the type it names (cut
    /// short, bytes left over, no type name).
    Malformed(String),
}

impl Undecoded {
    /// What the receiving side of endpoint `name`, which takes an
    /// `expected`, makes of it.
    pub fn into_error(self, name: &str, expected: &str) -> Error {
        match self {
            Undecoded::WrongType(found) => Error::WrongType {
                name: name.to_owned(),
                expected: expected.to_owned(),
                found,
            },
            Undecoded::Malformed(reason) => Error::Encoding {
                name: name.to_owned(),
                reason,
            },
        }
    }
}

/// `value` as a typed body for endpoint `name`.
///
/// # Errors
///
/// [`Error::Encoding`] if `value` can not be encoded,
/// [`Error::MessageTooLarge`] over [`MAX_MESSAGE`] (its type's name
/// included).
pub fn encode<T: Serialize + ?Sized>(name: &str, value: &T) -> Result<Vec<u8>, Error> {
    typed_after(name, Vec::new(), value)
}

/// Decodes a typed body as a `T`: only if it names `T`, and to its last
/// byte.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Undecoded> {
    let (found, rest) = postcard::take_from_bytes::<&str>(body)
        .map_err(|err| Undecoded::Malformed(format!("no type name: {err}")))?;
    if found != type_name::<T>() {
        return Err(Undecoded::WrongType(found.to_owned()));
    }
    strict(rest).map_err(Undecoded::Malformed)
}

/// `reply` as the answer to a call to mailbox `name`.
///
/// # Errors
///
/// Those of [`encode`].
pub fn encode_reply<R: Serialize + ?Sized>(name: &str, reply: &R) -> Result<Vec<u8>, Error> {
    let mut head = Vec::with_capacity(64);
    head.push(ANSWER);
    typed_after(name, head, reply)
}

/// The reply refusing a call whose message is not the `expected` the
/// server takes.
pub fn encode_refusal(expected: &str) -> Vec<u8> {
    // A string always encodes into a vector.
    postcard::to_extend(expected, vec![REFUSAL]).unwrap_or_else(|_| vec![REFUSAL])
}

/// Decodes the reply to a call of mailbox `name` whose message is an `M`,
/// as an `R`.
///
/// # Errors
///
/// [`Error::WrongType`] if the reply is not an `R` (`expected` is `R`), or
/// if the server refused the message (`expected` is the server's type,
/// `found` is `M`); [`Error::Encoding`] if it is malformed.
pub fn decode_reply<M, R: DeserializeOwned>(name: &str, reply: &[u8]) -> Result<R, Error> {
    let malformed = |reason: String| Error::Encoding {
        name: name.to_owned(),
        reason,
    };
    match reply.split_first() {
        Some((&ANSWER, body)) => {
            decode::<R>(body).map_err(|undecoded| undecoded.into_error(name, type_name::<R>()))
        }
        Some((&REFUSAL, expected)) => Err(Error::WrongType {
            name: name.to_owned(),
            expected: strict::<String>(expected).map_err(malformed)?,
            found: wire_name::<M>().into_owned(),
        }),
        Some((kind, _)) => Err(malformed(format!("a reply of unknown kind {kind}"))),
        None => Err(malformed("an empty reply".to_owned())),
    }
}

/// `value` in plain postcard, for endpoint `name` (a request about
/// dynamic children).
///
/// # Errors
///
/// As [`encode`].
pub fn encode_plain<T: Serialize + ?Sized>(name: &str, value: &T) -> Result<Vec<u8>, Error> {
    let body = postcard::to_stdvec(value).map_err(|err| Error::Encoding {
        name: name.to_owned(),
        reason: err.to_string(),
    })?;
    within_limit(name, body)
}

/// Decodes `bytes` as a `T`, to the last byte: bytes left over make it
/// malformed.
pub fn strict<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(format!(
            "{} trailing byte(s) after a {}",
            rest.len(),
            type_name::<T>()
        )),
        Err(err) => Err(err.to_string()),
    }
}

/// The name a `T` travels under: its [`type_name`], without references
/// (`&` and `&mut`), which serde encodes as what they refer to.
pub fn wire_name<T: ?Sized>() -> Cow<'static, str> {
    let name = type_name::<T>();
    if name.contains('&') {
        Cow::Owned(name.replace("&mut ", "").replace('&', ""))
    } else {
        Cow::Borrowed(name)
    }
}

/// `head`, then `value` as a typed body, within [`MAX_MESSAGE`].
fn typed_after<T: Serialize + ?Sized>(
    name: &str,
    head: Vec<u8>,
    value: &T,
) -> Result<Vec<u8>, Error> {
    let body =
        postcard::to_extend(&(&*wire_name::<T>(), value), head).map_err(|err| Error::Encoding {
            name: name.to_owned(),
            reason: err.to_string(),
        })?;
    within_limit(name, body)
}

/// `body`, if it is no larger than [`MAX_MESSAGE`].
fn within_limit(name: &str, body: Vec<u8>) -> Result<Vec<u8>, Error> {
    if body.len() > MAX_MESSAGE {
        return Err(Error::MessageTooLarge {
            name: name.to_owned(),
            size: body.len(),
            max: MAX_MESSAGE,
        });
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typed_body_is_decoded_only_as_its_type_and_to_its_last_byte() {
        let hello = encode("m", "hello").expect("encoded");
        let err = decode::<u64>(&hello).unwrap_err();
        assert_eq!(err, Undecoded::WrongType("str".into()));
        let err = err.into_error("m", type_name::<u64>());
        assert_eq!(
            err.to_string(),
            "\"m\" was sent a str where its receiving side takes a u64: it was not decoded"
        );
        let n = encode("m", &300u64).expect("encoded");
        assert_eq!(decode::<u64>(&n), Ok(300));
        assert!(matches!(
            decode::<u8>(&n),
            Err(Undecoded::WrongType(found)) if found == "u64"
        ));
        let mut longer = n.clone();
        longer.push(0);
        assert!(matches!(
            decode::<u64>(&longer),
            Err(Undecoded::Malformed(reason)) if reason == "1 trailing byte(s) after a u64"
        ));
        assert!(matches!(
            decode::<u64>(&n[..n.len() - 1]),
            Err(Undecoded::Malformed(_))
        ));
        assert!(matches!(decode::<u64>(&[]), Err(Undecoded::Malformed(_))));
    }

    #[test]
    fn a_reply_is_an_answer_or_a_refusal() {
        let answer = encode_reply("m", &300u64).expect("encoded");
        assert_eq!(decode_reply::<u32, u64>("m", &answer).expect("a u64"), 300);
        let err = decode_reply::<u32, u8>("m", &answer).unwrap_err();
        assert!(
            matches!(&err, Error::WrongType { name, expected, found }
                if name == "m" && expected == "u8" && found == "u64"),
            "{err}"
        );
        let refused = encode_refusal("alloc::string::String");
        let err = decode_reply::<u32, u64>("m", &refused).unwrap_err();
        assert!(
            matches!(&err, Error::WrongType { expected, found, .. }
                if expected == "alloc::string::String" && found == "u32"),
            "{err}"
        );
        for bad in [&[][..], &[7, 0], &[REFUSAL, 200]] {
            let err = decode_reply::<u32, u64>("m", bad).unwrap_err();
            assert!(matches!(err, Error::Encoding { .. }), "{err}");
        }
    }

    #[test]
    fn a_reference_travels_as_what_it_refers_to() {
        let value = 7u64;
        let by_reference = encode("m", &Some(&value)).expect("encoded");
        assert_eq!(decode::<Option<u64>>(&by_reference), Ok(Some(7)));
        let reply = encode_reply("m", &&mut vec![1u8]).expect("encoded");
        assert_eq!(
            decode_reply::<u32, Vec<u8>>("m", &reply).expect("a Vec"),
            [1]
        );
        // A str is not a String, though: no name is made up.
        assert!(matches!(
            decode::<String>(&encode("m", "x").expect("encoded")),
            Err(Undecoded::WrongType(found)) if found == "str"
        ));
    }

    #[test]
    fn the_limit_counts_the_type_name() {
        let name_len = type_name::<Vec<u8>>().len() + 1;
        let fits = vec![0u8; MAX_MESSAGE - name_len - 3];
        assert_eq!(encode("m", &fits).expect("fits").len(), MAX_MESSAGE);
        let err = encode("m", &vec![0u8; MAX_MESSAGE - name_len - 2]).unwrap_err();
        assert!(matches!(err, Error::MessageTooLarge { size, .. } if size == MAX_MESSAGE + 1));
    }
}
