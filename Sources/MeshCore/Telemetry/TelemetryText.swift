/// Small text helpers shared by the access log and the span encoder: JSON strings, timestamps,
/// addresses. Pure: no clock, no I/O.
enum TelemetryText {
    /// Appends `text` as a JSON string literal: `"` and `\` escaped, control characters as `\uXXXX`
    /// (or their short forms); everything else, non-ASCII included, as UTF-8.
    static func appendJSONString(_ text: String, to out: inout String) {
        out.append("\"")
        var plainStart = text.utf8.startIndex
        let utf8 = text.utf8
        var index = utf8.startIndex
        while index != utf8.endIndex {
            let byte = utf8[index]
            if byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                out.append(contentsOf: Substring(utf8[plainStart..<index]))
                switch byte {
                case UInt8(ascii: "\""): out.append("\\\"")
                case UInt8(ascii: "\\"): out.append("\\\\")
                case 0x0A: out.append("\\n")
                case 0x0D: out.append("\\r")
                case 0x09: out.append("\\t")
                default:
                    out.append("\\u00")
                    out.append(Self.hexDigit(byte >> 4))
                    out.append(Self.hexDigit(byte & 0xF))
                }
                plainStart = utf8.index(after: index)
            }
            index = utf8.index(after: index)
        }
        out.append(contentsOf: Substring(utf8[plainStart..<utf8.endIndex]))
        out.append("\"")
    }

    private static func hexDigit(_ value: UInt8) -> Character {
        Character(Unicode.Scalar(value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") + value - 10))
    }

    /// ISO-8601 UTC with milliseconds and `Z`, as Envoy prints `%START_TIME%`:
    /// `2024-01-09T15:35:47.283Z`, from microseconds since the Unix epoch.
    static func iso8601(micros: Int64) -> String {
        let millis = Self.floorDivide(micros, 1000)
        let seconds = Self.floorDivide(millis, 1000)
        let days = Self.floorDivide(seconds, 86_400)
        let secondOfDay = seconds - days * 86_400
        let (year, month, day) = Self.civil(daysSinceEpoch: days)
        var out = ""
        out.reserveCapacity(24)
        Self.appendPadded(year, width: 4, to: &out)
        out.append("-")
        Self.appendPadded(month, width: 2, to: &out)
        out.append("-")
        Self.appendPadded(day, width: 2, to: &out)
        out.append("T")
        Self.appendPadded(secondOfDay / 3600, width: 2, to: &out)
        out.append(":")
        Self.appendPadded(secondOfDay / 60 % 60, width: 2, to: &out)
        out.append(":")
        Self.appendPadded(secondOfDay % 60, width: 2, to: &out)
        out.append(".")
        Self.appendPadded(millis - seconds * 1000, width: 3, to: &out)
        out.append("Z")
        return out
    }

    private static func floorDivide(_ value: Int64, _ divisor: Int64) -> Int64 {
        let quotient = value / divisor
        return (value % divisor != 0 && value < 0) ? quotient - 1 : quotient
    }

    private static func appendPadded(_ value: Int64, width: Int, to out: inout String) {
        let digits = String(value)
        if digits.count < width { out.append(String(repeating: "0", count: width - digits.count)) }
        out.append(digits)
    }

    /// Year, month, day of a day count since 1970-01-01 (proleptic Gregorian; Howard Hinnant's
    /// `civil_from_days`).
    static func civil(daysSinceEpoch: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = daysSinceEpoch + 719_468
        let era = Self.floorDivide(z, 146_097)
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// The IP of `ip:port` or `[v6]:port` (the text as it is when there is no port).
    static func host(ofAddress address: String) -> Substring {
        if address.hasPrefix("["), let close = address.firstIndex(of: "]") {
            return address[address.index(after: address.startIndex)..<close]
        }
        guard let colon = address.lastIndex(of: ":"), address.firstIndex(of: ":") == colon else { return Substring(address) }
        return address[..<colon]
    }

    /// The port of `ip:port` or `[v6]:port`, nil without one.
    static func port(ofAddress address: String) -> Int? {
        guard let colon = address.lastIndex(of: ":") else { return nil }
        if !address.hasPrefix("["), address.firstIndex(of: ":") != colon { return nil }
        return Int(address[address.index(after: colon)...])
    }
}
