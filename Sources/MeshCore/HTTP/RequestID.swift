/// `x-request-id` values: random UUIDs (version 4) from ``FastRandom``, no Foundation, no syscall.
enum RequestID {
    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    static func make(random: FastRandom = .shared) -> String {
        var high = random.next()
        var low = random.next()
        high = (high & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000  // version 4
        low = (low & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000  // RFC 4122 variant
        return String(unsafeUninitializedCapacity: 36) { buffer in
            var index = 0
            func put(_ value: UInt64, nibbles: Int, from shift: Int) {
                for nibble in 0..<nibbles {
                    buffer[index] = Self.hex[Int((value >> UInt64(shift - 4 * nibble)) & 0xF)]
                    index += 1
                }
            }
            func dash() {
                buffer[index] = UInt8(ascii: "-")
                index += 1
            }
            put(high, nibbles: 8, from: 60)
            dash()
            put(high, nibbles: 4, from: 28)
            dash()
            put(high, nibbles: 4, from: 12)
            dash()
            put(low, nibbles: 4, from: 60)
            dash()
            put(low, nibbles: 12, from: 44)
            return 36
        }
    }
}
