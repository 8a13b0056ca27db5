//! Broken configurations, one folder each under tests/fixtures/bad-configs/:
//! `edgeward check` must refuse each with exit code 78 and the message in
//! its `error.txt`. `@RULES@` in a config stands for the test rules' folder.

use crate::support::{edgeward, guest_dir, repo_root, stderr};

/// Each broken configuration is refused with its own clear message and EX_CONFIG.
#[test]
fn each_bad_config_is_refused_with_its_message() {
    let cases = repo_root().join("tests/fixtures/bad-configs");
    let mut seen = 0;
    for entry in std::fs::read_dir(&cases).unwrap() {
        let case = entry.unwrap().path();
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let expected = std::fs::read_to_string(case.join("error.txt")).unwrap();
        let expected = expected.trim();

        let work = tempfile::tempdir().unwrap();
        for file in std::fs::read_dir(&case).unwrap() {
            let file = file.unwrap().path();
            let text = std::fs::read(&file).unwrap();
            let text = String::from_utf8(text)
                .map(|t| t.replace("@RULES@", &guest_dir().display().to_string()).into_bytes())
                .unwrap_or_else(|e| e.into_bytes());
            std::fs::write(work.path().join(file.file_name().unwrap()), text).unwrap();
        }

        let out = edgeward(&["check", "-c", work.path().join("edgeward.toml").to_str().unwrap()]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(78), "{name}: {err}");
        assert!(err.contains(expected), "{name}: expected {expected:?} in:\n{err}");
        seen += 1;
    }
    assert!(seen >= 8, "only {seen} cases found");
}
