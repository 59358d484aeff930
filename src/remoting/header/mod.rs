//! Typed custom headers: one struct per request/response header the broker and nameserver
//! serve, read from and written to ext fields by name (protocol.md §3).
//!
//! Reading follows Java's rules: required (`@CFNotNull`) fields must be present, optional
//! ones are `Option`, a few Java primitives with defaults fall back to that default, unknown
//! keys are ignored, numbers must parse as Java `parseInt`/`parseLong` would and booleans
//! use `Boolean.parseBoolean`. Writing renders every present field as a string and omits
//! `None`s, as Java does for null fields.
//!
//! Headers are grouped by who serves them: [`namesrv`], [`send`] (SEND_MESSAGE and its V2
//! one-letter form), [`pull`], [`offset`] (offsets and queries), [`client`] (client
//! management, transactions, send-back), [`admin`] (topic and group administration).

use super::command::{ext_opt_bool, ext_opt_parse, ext_parse, ext_str, parse_java_bool, ExtFields};
use super::error::HeaderError;

pub mod admin;
pub mod client;
pub mod group;
pub mod namesrv;
pub mod offset;
pub mod pull;
pub mod send;

/// A value type a header field can have; decides how it is read and written.
pub trait ExtValue: Sized {
    /// Reads the field stored under `key` (absence is an error unless `Self` is an `Option`).
    fn read(ext: &ExtFields, key: &'static str) -> Result<Self, HeaderError>;
    /// Writes the field under `key` (an `Option` writes nothing when `None`).
    fn write(&self, ext: &mut ExtFields, key: &str);
}

impl ExtValue for String {
    fn read(ext: &ExtFields, key: &'static str) -> Result<Self, HeaderError> {
        ext_str(ext, key).map(str::to_owned)
    }
    fn write(&self, ext: &mut ExtFields, key: &str) {
        ext.insert(key, self);
    }
}

impl ExtValue for Option<String> {
    fn read(ext: &ExtFields, key: &'static str) -> Result<Self, HeaderError> {
        Ok(ext.get(key).map(str::to_owned))
    }
    fn write(&self, ext: &mut ExtFields, key: &str) {
        if let Some(v) = self {
            ext.insert(key, v);
        }
    }
}

impl ExtValue for bool {
    fn read(ext: &ExtFields, key: &'static str) -> Result<Self, HeaderError> {
        ext_str(ext, key).map(parse_java_bool)
    }
    fn write(&self, ext: &mut ExtFields, key: &str) {
        ext.insert_display(key, self);
    }
}

impl ExtValue for Option<bool> {
    fn read(ext: &ExtFields, key: &'static str) -> Result<Self, HeaderError> {
        Ok(ext_opt_bool(ext, key))
    }
    fn write(&self, ext: &mut ExtFields, key: &str) {
        if let Some(v) = self {
            ext.insert_display(key, v);
        }
    }
}

macro_rules! int_ext_value {
    ($t:ty, $expected:literal) => {
        impl ExtValue for $t {
            fn read(ext: &ExtFields, key: &'static str) -> Result<Self, HeaderError> {
                ext_parse(ext, key, $expected)
            }
            fn write(&self, ext: &mut ExtFields, key: &str) {
                ext.insert_display(key, self);
            }
        }

        impl ExtValue for Option<$t> {
            fn read(ext: &ExtFields, key: &'static str) -> Result<Self, HeaderError> {
                ext_opt_parse(ext, key, $expected)
            }
            fn write(&self, ext: &mut ExtFields, key: &str) {
                if let Some(v) = self {
                    ext.insert_display(key, v);
                }
            }
        }
    };
}

int_ext_value!(i32, "an int");
int_ext_value!(i64, "a long");
int_ext_value!(u64, "an unsigned long");

/// Reads one field; with a default, an absent key yields the default instead of an error.
macro_rules! read_ext_field {
    ($ext:ident, $key:literal, $ty:ty) => {
        <$ty as $crate::remoting::header::ExtValue>::read($ext, $key)?
    };
    ($ext:ident, $key:literal, $ty:ty, $default:expr) => {
        if $ext.contains_key($key) {
            <$ty as $crate::remoting::header::ExtValue>::read($ext, $key)?
        } else {
            $default
        }
    };
}

/// Declares a header struct and its [`CommandHeader`](crate::remoting::CommandHeader) impl.
///
/// Each field is `name: Type => "wireKey"`, optionally `= default` for Java primitives that
/// have a default instead of being required.
macro_rules! command_header {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty => $key:literal $(= $default:expr)? , )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $crate::remoting::CommandHeader for $name {
            #[allow(unused_variables)]
            fn from_ext(
                ext: &$crate::remoting::ExtFields,
            ) -> Result<Self, $crate::remoting::HeaderError> {
                Ok($name {
                    $( $field: $crate::remoting::header::read_ext_field!(ext, $key, $ty $(, $default)?), )*
                })
            }

            #[allow(unused_variables)]
            fn to_ext(&self, ext: &mut $crate::remoting::ExtFields) {
                $( $crate::remoting::header::ExtValue::write(&self.$field, ext, $key); )*
            }
        }
    };
}

pub(crate) use command_header;
pub(crate) use read_ext_field;

/// The header of a request that carries nothing in its ext fields (HEART_BEAT, LOCK_BATCH_MQ,
/// GET_BROKER_CLUSTER_INFO, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EmptyHeader;

impl super::CommandHeader for EmptyHeader {
    fn from_ext(_ext: &ExtFields) -> Result<Self, HeaderError> {
        Ok(EmptyHeader)
    }
    fn to_ext(&self, _ext: &mut ExtFields) {}
}
