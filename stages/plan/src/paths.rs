//! Paths in a plan: a test's relative paths (build contexts, volume host paths) made
//! relative to the project root, as text. Nothing here touches the file system; the exec stage
//! joins the result to the root it is given.

/// `path` (relative to the test folder `test_dir`, or absolute) made relative to
/// the project root, normalised, `/`-separated. `..` past the root is kept, so
/// the result still names the same place when joined to the root.
pub fn root_relative(test_dir: &str, path: &str) -> String {
    if path.starts_with('/') {
        return normalise(path, true);
    }
    let joined = if test_dir.is_empty() || test_dir == "." {
        path.to_string()
    } else {
        format!("{test_dir}/{path}")
    };
    normalise(&joined, false)
}

fn normalise(path: &str, absolute: bool) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if absolute => {}
                _ => parts.push(".."),
            },
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}
