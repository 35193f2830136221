//! Quoting for POSIX shells, for the few places where a command line must pass through
//! one (an SSH server's login shell, NEWT's word splitting, a batch script). Arguments are
//! data: every word that is not plainly safe is single-quoted, with `'` written as `'\''`,
//! which any POSIX shell and POSIX word splitting turn back into the exact bytes.

use std::borrow::Cow;

/// Quote one word: unchanged when it is non-empty and made only of
/// `[A-Za-z0-9_./:,+@-]`, else single-quoted.
pub fn quote(word: &str) -> Cow<'_, str> {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./:,+@".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        Cow::Borrowed(word)
    } else {
        Cow::Owned(quote_always(word))
    }
}

/// Quote one word always, even a safe one (for generated scripts that read better when
/// every path looks the same).
pub fn quote_always(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Whether `name` can be an environment variable's name: a POSIX shell *name*,
/// `[A-Za-z_][A-Za-z0-9_]*`. Every connector and the CLI refuse other names: a shell
/// cannot `export` them, and `env` would read them (or a program path after them) as
/// something else.
pub fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b == b'_' || b.is_ascii_alphabetic())
        && bytes.all(|b| b == b'_' || b.is_ascii_alphanumeric())
}

/// Quote every word and join them with spaces.
pub fn join<I, S>(words: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    words
        .into_iter()
        .map(|w| quote(w.as_ref()).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_words_stay_and_the_rest_is_quoted() {
        assert_eq!(quote("abc/d.e-f"), "abc/d.e-f");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote_always("abc"), "'abc'");
        assert_eq!(quote_always("it's"), quote("it's"));
        assert_eq!(join(["echo", "$(id)", "-n"]), "echo '$(id)' -n");
    }

    #[test]
    fn env_names() {
        assert!(is_env_name("PATH") && is_env_name("_x1") && is_env_name("a"));
        for bad in ["1x", "a-b", "", "a=b", "A B", "é", "a\0"] {
            assert!(!is_env_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_real_shell_gives_the_words_back() {
        let words = crate::testsuite_strings();
        let script = format!("printf '%s\\0' {}", join(&words));
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        let got: Vec<String> = out
            .stdout
            .split(|b| *b == 0)
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        assert_eq!(&got[..got.len() - 1], &words[..]);
    }
}
