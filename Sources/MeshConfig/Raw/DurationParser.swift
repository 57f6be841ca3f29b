/// Durations as Istio writes them: Go's `time.ParseDuration` syntax without a sign, e.g. `30s`,
/// `1.5s`, `500ms`, `1m`, `1h30m`, `250us`, `10ns`. A bare `0` is zero.
enum DurationParser {
    struct Problem: Error, Equatable {
        var message: String
    }

    private static let units: [(suffix: String, nanoseconds: Int64)] = [
        // Longest suffixes first, so `ms` is not read as `m` followed by `s`.
        ("ns", 1), ("us", 1_000), ("µs", 1_000), ("μs", 1_000), ("ms", 1_000_000),
        ("s", 1_000_000_000), ("m", 60_000_000_000), ("h", 3_600_000_000_000),
    ]

    static func parse(_ text: String) -> Result<Duration, Problem> {
        if text == "0" { return .success(.zero) }
        guard !text.isEmpty else { return .failure(Problem(message: "empty")) }
        if text.hasPrefix("-") { return .failure(Problem(message: "durations cannot be negative")) }
        var rest = Substring(text)
        var total: Int64 = 0
        while !rest.isEmpty {
            let whole = rest.prefix { $0.isASCII && $0.isNumber }
            rest = rest.dropFirst(whole.count)
            var fraction: Substring = ""
            if rest.first == "." {
                rest = rest.dropFirst()
                fraction = rest.prefix { $0.isASCII && $0.isNumber }
                rest = rest.dropFirst(fraction.count)
            }
            guard !whole.isEmpty || !fraction.isEmpty else {
                return .failure(Problem(message: "expected a number followed by a unit (ns, us, ms, s, m, h)"))
            }
            guard let unit = self.units.first(where: { rest.hasPrefix($0.suffix) }) else {
                return .failure(Problem(message: "missing or unknown unit; use ns, us, ms, s, m or h"))
            }
            rest = rest.dropFirst(unit.suffix.count)
            guard let part = self.nanoseconds(whole: whole, fraction: fraction, unit: unit.nanoseconds),
                  case (let sum, false) = total.addingReportingOverflow(part)
            else {
                return .failure(Problem(message: "too long"))
            }
            total = sum
        }
        return .success(.nanoseconds(total))
    }

    private static func nanoseconds(whole: Substring, fraction: Substring, unit: Int64) -> Int64? {
        let integer = whole.isEmpty ? 0 : Int64(whole)
        guard let integer, case (let scaled, false) = integer.multipliedReportingOverflow(by: unit) else { return nil }
        // Fractions finer than a nanosecond are dropped, as Go does.
        var fractional: Int64 = 0
        var scale = unit
        for digit in fraction.prefix(19) {
            scale /= 10
            fractional += Int64(digit.wholeNumberValue ?? 0) * scale
        }
        let (sum, overflow) = scaled.addingReportingOverflow(fractional)
        return overflow ? nil : sum
    }
}
