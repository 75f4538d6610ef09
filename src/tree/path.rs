//! Znode path rules, exactly ZooKeeper's `PathUtils.validatePath`.
//!
//! ZooKeeper checks paths as Java strings, i.e. UTF-16 code units. Every
//! character above U+FFFF is a surrogate pair there, and surrogates
//! (U+D800..U+DFFF) are forbidden, so such characters are rejected here too.

use crate::proto::ErrorCode;

/// A shared path: one allocation (length, count and bytes behind an 8-byte
/// pointer, half an `Arc<str>` handle), held by the path index, the
/// parent's child set, the owner indexes and watch events.
pub type PathRef = arcstr::ArcStr;

/// The root path.
pub const ROOT: &str = "/";

/// Validates an absolute znode path: BadArguments unless it starts with '/',
/// has no trailing '/' (except the root), no empty, "." or ".." segment and
/// no forbidden character.
pub fn validate_path(path: &str) -> Result<(), ErrorCode> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(ErrorCode::BadArguments);
    }
    if bytes.len() == 1 {
        return Ok(());
    }
    if bytes[bytes.len() - 1] == b'/' {
        return Err(ErrorCode::BadArguments);
    }
    let bad_segment = path[1..]
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..");
    if bad_segment || path.chars().any(is_forbidden_char) {
        return Err(ErrorCode::BadArguments);
    }
    Ok(())
}

/// ZooKeeper validates a sequential create as `path + "1"`, so a sequential
/// path may end with '/' (the counter becomes the whole last segment).
pub fn validate_path_sequential(path: &str, is_sequential: bool) -> Result<(), ErrorCode> {
    if is_sequential {
        validate_path(&format!("{path}1"))
    } else {
        validate_path(path)
    }
}

/// Characters ZooKeeper refuses in a path (see the module comment for > U+FFFF).
pub fn is_forbidden_char(c: char) -> bool {
    matches!(c,
        '\u{0000}'..='\u{001f}'
        | '\u{007f}'..='\u{009f}'
        // U+D800..U+DFFF cannot occur in a Rust string.
        | '\u{e000}'..='\u{f8ff}'
        | '\u{fff0}'..)
}

/// The parent of a path: "/a/b" -> "/a", "/a" -> "/", "/" -> "/".
/// A string without '/' has the empty parent.
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => ROOT,
        Some(slash) => &path[..slash],
        None => "",
    }
}

/// The last segment of a path: "/a/b" -> "b", "/" -> "".
pub fn basename(path: &str) -> &str {
    match path.rfind('/') {
        Some(slash) => &path[slash + 1..],
        None => path,
    }
}

/// ZooKeeper's raw parent (`path.substring(0, lastIndexOf('/'))`), where the
/// root's children have the parent "" (an alias of the root in ZooKeeper).
/// None when there is no '/' at all.
pub(crate) fn zk_parent(path: &str) -> Option<&str> {
    path.rfind('/').map(|slash| &path[..slash])
}

/// Length of a path as Java counts it (UTF-16 units); used for the
/// approximate data size that ZooKeeper reports.
pub(crate) fn java_len(path: &str) -> i64 {
    path.encode_utf16().count() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_paths() {
        for path in [
            "/",
            "/a",
            "/a/b/c",
            "/a.b",
            "/...",
            "/a/..b",
            "/.a",
            "/a.",
            "/zookeeper",
            "/with space",
            "/ünïcödé",
            "/\u{00a0}",
            "/\u{f900}",
            "/\u{ffef}",
        ] {
            assert_eq!(validate_path(path), Ok(()), "{path:?}");
        }
    }

    #[test]
    fn invalid_paths() {
        for path in [
            "",
            "a",
            "a/b",
            "/a/",
            "//",
            "/a//b",
            "/.",
            "/..",
            "/a/.",
            "/a/./b",
            "/a/../b",
            "/a/..",
            "/a\u{0000}b",
            "/a\u{0001}",
            "/\u{001f}",
            "/\u{007f}",
            "/\u{0080}",
            "/\u{009f}",
            "/\u{e000}",
            "/\u{f8ff}",
            "/\u{fff0}",
            "/\u{fffd}",
            "/\u{ffff}",
            "/\u{1f600}",
            "/\u{10000}",
        ] {
            assert_eq!(
                validate_path(path),
                Err(ErrorCode::BadArguments),
                "{path:?}"
            );
        }
    }

    #[test]
    fn sequential_paths_may_end_with_slash() {
        assert_eq!(validate_path_sequential("/a/", true), Ok(()));
        assert_eq!(
            validate_path_sequential("/a/", false),
            Err(ErrorCode::BadArguments)
        );
        assert_eq!(validate_path_sequential("/a/.", true), Ok(()));
        assert_eq!(validate_path_sequential("/", true), Ok(()));
        assert_eq!(
            validate_path_sequential("/a//", true),
            Err(ErrorCode::BadArguments)
        );
    }

    #[test]
    fn parent_and_basename() {
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/"), "/");
        assert_eq!(basename("/a/b"), "b");
        assert_eq!(basename("/a"), "a");
        assert_eq!(basename("/"), "");
        assert_eq!(zk_parent("/a"), Some(""));
        assert_eq!(zk_parent("/a/b"), Some("/a"));
        assert_eq!(zk_parent("a"), None);
        assert_eq!(java_len("/zookeeper"), 10);
    }
}
