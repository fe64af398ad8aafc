//! "Did you mean" hints for unknown keys and variables.

/// The known name closest to `unknown` (for "did you mean" hints).
pub(crate) fn closest<'a>(unknown: &str, names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    names
        .map(|n| (edit_distance(unknown, n), n))
        .filter(|(d, n)| *d <= 3.max(n.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KEYS;

    #[test]
    fn closest_suggests_near_misses_only() {
        let names = KEYS.iter().map(|k| k.key);
        assert_eq!(
            closest("membership.prot", names.clone()),
            Some("membership.port")
        );
        assert_eq!(closest("zzzzzzzzzzzzzzzzzzzzzz", names), None);
    }
}
