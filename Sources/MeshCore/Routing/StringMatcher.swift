import MeshConfig

/// A compiled Istio `StringMatch`: exact, prefix or whole-value regex (RE2).
public struct StringMatcher: Sendable {
    private enum Kind: Sendable {
        case exact(String)
        case prefix(String)
        case regex(RE2Regex)
    }

    private let kind: Kind
    private let ignoreCase: Bool

    public init(_ match: StringMatch, ignoreCase: Bool = false) throws {
        self.ignoreCase = ignoreCase
        switch match {
        case .exact(let value): self.kind = .exact(ignoreCase ? value.lowercased() : value)
        case .prefix(let value): self.kind = .prefix(ignoreCase ? value.lowercased() : value)
        case .regex(let pattern): self.kind = .regex(try RE2Regex(pattern))
        }
    }

    public func matches(_ value: Substring) -> Bool {
        switch self.kind {
        case .exact(let expected):
            return self.ignoreCase ? value.lowercased() == expected : value == expected[...]
        case .prefix(let prefix):
            return self.ignoreCase ? value.lowercased().hasPrefix(prefix) : value.hasPrefix(prefix)
        case .regex(let regex):
            var copy = value
            return copy.withUTF8 { regex.matches(utf8: UnsafeRawBufferPointer($0)) }
        }
    }

    public func matches(_ value: String) -> Bool {
        self.matches(value[...])
    }

    /// How many leading characters of a value a prefix matcher stands for (nil: not a prefix matcher).
    var prefixLength: Int? {
        if case .prefix(let prefix) = self.kind { return prefix.count }
        return nil
    }
}
