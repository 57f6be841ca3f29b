/// The name among `candidates` closest to a misspelled `name`, when it is close enough to be the
/// likely intent (at most two edits, and fewer than half the letters).
func closestName(to name: String, among candidates: some Sequence<String>) -> String? {
    let limit = min(2, max(1, name.count / 2))
    var best: (name: String, distance: Int)?
    for candidate in candidates.sorted() {
        let distance = editDistance(name.lowercased(), candidate.lowercased())
        if distance <= limit, distance < best?.distance ?? Int.max {
            best = (candidate, distance)
        }
    }
    return best?.name
}

/// Levenshtein distance between two strings, by characters.
func editDistance(_ lhs: String, _ rhs: String) -> Int {
    let left = Array(lhs)
    let right = Array(rhs)
    guard !left.isEmpty else { return right.count }
    guard !right.isEmpty else { return left.count }
    var previous = Array(0...right.count)
    var current = previous
    for i in 1...left.count {
        current[0] = i
        for j in 1...right.count {
            let substitution = previous[j - 1] + (left[i - 1] == right[j - 1] ? 0 : 1)
            current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
        }
        swap(&previous, &current)
    }
    return previous[right.count]
}
