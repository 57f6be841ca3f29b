/// Prometheus text exposition format 0.0.4 helpers.
enum PrometheusText {
    /// `a="x",b="y"` with values escaped (`\`, `"`, newline).
    static func labels(_ pairs: [(String, String)]) -> String {
        pairs.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",")
    }

    /// The `(name, value)` pairs of a label text made by ``labels(_:)``, values unescaped.
    static func parseLabels(_ text: String) -> [(String, String)] {
        var pairs: [(String, String)] = []
        var rest = text[...]
        while let equals = rest.firstIndex(of: "=") {
            let name = String(rest[..<equals].drop { $0 == "," })  // the separator before it
            var index = rest.index(after: equals)  // at the opening quote
            guard index < rest.endIndex, rest[index] == "\"" else { break }
            index = rest.index(after: index)
            var value = ""
            while index < rest.endIndex, rest[index] != "\"" {
                if rest[index] == "\\", rest.index(after: index) < rest.endIndex {
                    index = rest.index(after: index)
                    value.append(rest[index] == "n" ? "\n" : rest[index])
                } else {
                    value.append(rest[index])
                }
                index = rest.index(after: index)
            }
            pairs.append((name, value))
            rest = index < rest.endIndex ? rest[rest.index(after: index)...] : ""
        }
        return pairs
    }

    static func escape(_ value: String) -> String {
        guard value.utf8.contains(where: { $0 == UInt8(ascii: "\\") || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\n") }) else {
            return value
        }
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }

    /// A sample value: integers without a fraction, others in Swift's shortest round-trip form.
    static func value(_ number: Double) -> String {
        if number == number.rounded(), abs(number) < 1e15 { return String(Int64(number)) }
        return String(number)
    }
}
