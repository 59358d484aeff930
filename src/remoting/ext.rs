//! [`ExtFields`]: a command's custom header, string keys to string values.
//!
//! Every request and response carries one, so its cost is paid per message: a send request
//! has a dozen fields. A map of owned strings costs two allocations per field plus its
//! nodes, to build and again to drop. Here all keys and values live in one text buffer and
//! the entries are ranges into it, kept sorted by key, so a decoded header costs two
//! allocations whatever its size, and lookups are a binary search over a dozen entries.
//!
//! Keys are kept in byte order, so JSON headers come out alphabetical as fastjson writes
//! them, and iteration is deterministic.

use std::cmp::Ordering;
use std::fmt::{self, Display, Write as _};
use std::ops::Index;

use serde::ser::{Serialize, SerializeMap, Serializer};

/// Byte order of two keys, deciding on the first byte where it differs (most keys of a header
/// do) before calling a full comparison.
fn cmp_keys(a: &[u8], b: &[u8]) -> Ordering {
    match (a.first(), b.first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

/// Where one field's key and value sit in the text buffer.
#[derive(Debug, Clone, Copy)]
struct Entry {
    key_start: u32,
    key_end: u32,
    value_start: u32,
    value_end: u32,
}

/// Ext fields: string → string, sorted by key. A replaced or removed field leaves its old
/// text in the buffer until the map is dropped; headers are small and short-lived.
#[derive(Clone, Default)]
pub struct ExtFields {
    text: String,
    entries: Vec<Entry>,
}

impl ExtFields {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map with room for `fields` fields of `text_len` bytes of keys and values.
    pub fn with_capacity(fields: usize, text_len: usize) -> Self {
        ExtFields {
            text: String::with_capacity(text_len),
            entries: Vec::with_capacity(fields),
        }
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn key_of(&self, e: &Entry) -> &str {
        &self.text[e.key_start as usize..e.key_end as usize]
    }

    fn value_of(&self, e: &Entry) -> &str {
        &self.text[e.value_start as usize..e.value_end as usize]
    }

    fn key_bytes(&self, e: &Entry) -> &[u8] {
        &self.text.as_bytes()[e.key_start as usize..e.key_end as usize]
    }

    /// Where `key` is, or where it would go to keep the order. Fields mostly arrive in key
    /// order (fastjson writes sorted keys, so does our encoder, and SEND_MESSAGE_V2's fields
    /// are `a`, `b`, ...), so the last field is tried before a binary search.
    fn find(&self, key: &str) -> Result<usize, usize> {
        let key = key.as_bytes();
        let Some(last) = self.entries.last() else {
            return Err(0);
        };
        match cmp_keys(self.key_bytes(last), key) {
            Ordering::Less => Err(self.entries.len()),
            Ordering::Equal => Ok(self.entries.len() - 1),
            Ordering::Greater => self
                .entries
                .binary_search_by(|e| cmp_keys(self.key_bytes(e), key)),
        }
    }

    /// The index of `key`. A header has a dozen fields, most keys differ in length or first
    /// byte (SEND_MESSAGE_V2's are single letters), so a linear scan that rejects on those
    /// before comparing bytes beats a binary search of full comparisons.
    fn position(&self, key: &str) -> Option<usize> {
        let key = key.as_bytes();
        self.entries.iter().position(|e| {
            let k = self.key_bytes(e);
            k.len() == key.len() && k.first() == key.first() && k == key
        })
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        let i = self.position(key)?;
        Some(self.value_of(&self.entries[i]))
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Appends to the text buffer and returns the range written.
    fn append(&mut self, write: impl FnOnce(&mut String)) -> (u32, u32) {
        let start = self.text.len();
        write(&mut self.text);
        // Headers are bounded by the frame limit (16 MiB), far below u32::MAX.
        (start as u32, self.text.len() as u32)
    }

    fn set_value(&mut self, key: &str, write: impl FnOnce(&mut String)) {
        match self.find(key) {
            Ok(i) => {
                let (value_start, value_end) = self.append(write);
                let e = &mut self.entries[i];
                e.value_start = value_start;
                e.value_end = value_end;
            }
            Err(i) => {
                let (key_start, key_end) = self.append(|t| t.push_str(key));
                let (value_start, value_end) = self.append(write);
                self.entries.insert(
                    i,
                    Entry {
                        key_start,
                        key_end,
                        value_start,
                        value_end,
                    },
                );
            }
        }
    }

    /// Sets `key` to `value`, replacing any earlier value.
    pub fn insert(&mut self, key: impl AsRef<str>, value: impl AsRef<str>) {
        let value = value.as_ref();
        self.set_value(key.as_ref(), |t| t.push_str(value));
    }

    /// Sets `key` to `value` rendered with `Display` (decimal numbers, `true`/`false`),
    /// written straight into the buffer.
    pub fn insert_display(&mut self, key: &str, value: impl Display) {
        self.set_value(key, |t| {
            // Writing into a String cannot fail.
            let _ = write!(t, "{value}");
        });
    }

    /// Removes `key`; `true` if it was there.
    pub fn remove(&mut self, key: &str) -> bool {
        match self.position(key) {
            Some(i) => {
                self.entries.remove(i);
                true
            }
            None => false,
        }
    }

    /// Fields in key order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            ext: self,
            entries: self.entries.iter(),
        }
    }

    /// Keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.entries.iter().map(|e| self.key_of(e))
    }
}

/// Iterator over the fields of an [`ExtFields`], in key order.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    ext: &'a ExtFields,
    entries: std::slice::Iter<'a, Entry>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);
    fn next(&mut self) -> Option<Self::Item> {
        let e = self.entries.next()?;
        Some((self.ext.key_of(e), self.ext.value_of(e)))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl<'a> IntoIterator for &'a ExtFields {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for ExtFields {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut ext = ExtFields::new();
        for (k, v) in iter {
            ext.insert(k, v);
        }
        ext
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> From<[(K, V); N]> for ExtFields {
    fn from(fields: [(K, V); N]) -> Self {
        fields.into_iter().collect()
    }
}

/// `ext["key"]`: the value, panicking when absent (as a map's index does).
impl Index<&str> for ExtFields {
    type Output = str;
    fn index(&self, key: &str) -> &str {
        match self.get(key) {
            Some(v) => v,
            None => panic!("no ext field {key:?}"),
        }
    }
}

/// Equal when they hold the same fields, whatever text either buffer keeps from replaced
/// or removed ones.
impl PartialEq for ExtFields {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for ExtFields {}

impl fmt::Debug for ExtFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// A JSON object in key order.
impl Serialize for ExtFields {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.len()))?;
        for (k, v) in self {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn insert_replace_remove_and_order() {
        let mut ext = ExtFields::new();
        assert!(ext.is_empty());
        ext.insert("topic", "T");
        ext.insert_display("queueId", 3);
        ext.insert("a", "");
        ext.insert("topic", "U");
        assert_eq!(ext.len(), 3);
        assert_eq!(ext.get("topic"), Some("U"));
        assert_eq!(&ext["queueId"], "3");
        assert_eq!(ext.get("a"), Some(""));
        assert_eq!(ext.get("missing"), None);
        assert_eq!(ext.keys().collect::<Vec<_>>(), ["a", "queueId", "topic"]);
        assert!(ext.remove("a"));
        assert!(!ext.remove("a"));
        assert!(!ext.contains_key("a"));
        assert_eq!(
            ext,
            ExtFields::from([("topic", "U"), ("queueId", "3")]),
            "garbage text does not count"
        );
        assert_eq!(format!("{ext:?}"), r#"{"queueId": "3", "topic": "U"}"#);
        assert_eq!(
            serde_json::to_string(&ext).unwrap(),
            r#"{"queueId":"3","topic":"U"}"#
        );
    }

    #[test]
    #[should_panic(expected = "no ext field")]
    fn index_of_a_missing_key_panics() {
        let _ = &ExtFields::new()["k"];
    }

    proptest! {
        /// Any sequence of inserts and removes leaves the same fields, in the same order,
        /// as a BTreeMap given the same operations.
        #[test]
        fn behaves_as_a_sorted_map(ops in proptest::collection::vec(
            (any::<bool>(), "[a-c]{0,3}|é|\u{0}", ".{0,4}"), 0..40)
        ) {
            let mut ext = ExtFields::new();
            let mut model = BTreeMap::new();
            for (insert, k, v) in ops {
                if insert {
                    ext.insert(&k, &v);
                    model.insert(k, v);
                } else {
                    prop_assert_eq!(ext.remove(&k), model.remove(&k).is_some());
                }
            }
            let got: Vec<(&str, &str)> = ext.iter().collect();
            let want: Vec<(&str, &str)> =
                model.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            prop_assert_eq!(got, want);
            for (k, v) in &model {
                prop_assert_eq!(ext.get(k), Some(v.as_str()));
            }
        }
    }
}
