/// Reads the SNI and ALPN offers from the start of a TLS connection, without terminating it
/// (Envoy's TLS inspector). Pure: bytes in, a verdict out.
///
/// RFC 8446 §4.1.2 (ClientHello), RFC 6066 §3 (server_name), RFC 7301 §3.1 (ALPN). A ClientHello
/// may span several records; it is reassembled up to ``maximumSize`` bytes.
public enum ClientHelloParser {
    /// The largest ClientHello accepted (handshake bytes). Real ones are a few hundred bytes to a
    /// few KiB (post-quantum key shares push them past one record); anything bigger is refused.
    public static let maximumSize = 32 * 1024

    public struct ClientHello: Sendable, Equatable {
        /// The `server_name` host name, lower-cased; nil when the client sent none.
        public var serverName: String?
        /// ALPN protocols offered, in the client's order.
        public var alpn: [String]
    }

    public enum Verdict: Sendable, Equatable {
        case needMoreData
        case clientHello(ClientHello)
        /// Not a TLS handshake at all (plain text, garbage).
        case notTLS
        /// A TLS record that does not hold a well-formed ClientHello, or one over ``maximumSize``.
        case malformed(String)
    }

    public static func parse(_ bytes: some Collection<UInt8>) -> Verdict {
        let bytes = Array(bytes)
        // Reassemble the handshake bytes from consecutive handshake records.
        var handshake: [UInt8] = []
        var offset = 0
        var needed: Int?
        while true {
            guard bytes.count >= offset + 5 else { return .needMoreData }
            let contentType = bytes[offset]
            let major = bytes[offset + 1]
            if offset == 0 {
                guard contentType == 0x16, major == 3 else { return .notTLS }
            } else if contentType != 0x16 {
                return .malformed("ClientHello interrupted by a record of type \(contentType)")
            }
            let length = Int(bytes[offset + 3]) << 8 | Int(bytes[offset + 4])
            guard length > 0, length <= 16384 + 256 else { return .malformed("record length \(length)") }
            guard bytes.count >= offset + 5 + length else { return .needMoreData }
            handshake += bytes[(offset + 5)..<(offset + 5 + length)]
            offset += 5 + length
            if needed == nil, handshake.count >= 4 {
                guard handshake[0] == 0x01 else { return .malformed("first handshake message is type \(handshake[0]), not ClientHello") }
                needed = 4 + (Int(handshake[1]) << 16 | Int(handshake[2]) << 8 | Int(handshake[3]))
                guard needed! <= Self.maximumSize else { return .malformed("ClientHello of \(needed!) bytes is over \(Self.maximumSize)") }
            }
            if let needed, handshake.count >= needed {
                return Self.parseClientHello(handshake[4..<needed])
            }
            if handshake.count > Self.maximumSize { return .malformed("ClientHello over \(Self.maximumSize) bytes") }
        }
    }

    private static func parseClientHello(_ body: ArraySlice<UInt8>) -> Verdict {
        var reader = Reader(bytes: body)
        guard reader.skip(2 + 32),  // legacy_version, random
            let sessionLength = reader.u8(), reader.skip(Int(sessionLength)),
            let suitesLength = reader.u16(), suitesLength % 2 == 0, reader.skip(Int(suitesLength)),
            let compressionLength = reader.u8(), reader.skip(Int(compressionLength))
        else { return .malformed("truncated ClientHello") }
        var hello = ClientHello(serverName: nil, alpn: [])
        if reader.remaining == 0 { return .clientHello(hello) }  // no extensions
        guard let extensionsLength = reader.u16(), var extensions = reader.sub(Int(extensionsLength)) else {
            return .malformed("truncated extensions")
        }
        while extensions.remaining > 0 {
            guard let type = extensions.u16(), let length = extensions.u16(), var data = extensions.sub(Int(length)) else {
                return .malformed("truncated extension")
            }
            switch type {
            case 0x0000:  // server_name
                guard let listLength = data.u16(), var list = data.sub(Int(listLength)) else { return .malformed("bad server_name") }
                while list.remaining > 0 {
                    guard let nameType = list.u8(), let nameLength = list.u16(), let name = list.sub(Int(nameLength)) else {
                        return .malformed("bad server_name entry")
                    }
                    if nameType == 0 {
                        guard let text = String(validating: name.bytes, as: UTF8.self), !text.isEmpty,
                            text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
                        else { return .malformed("server_name is not a host name") }
                        hello.serverName = text.lowercased()
                    }
                }
            case 0x0010:  // application_layer_protocol_negotiation
                guard let listLength = data.u16(), var list = data.sub(Int(listLength)) else { return .malformed("bad ALPN") }
                while list.remaining > 0 {
                    guard let length = list.u8(), length > 0, let name = list.sub(Int(length)) else { return .malformed("bad ALPN entry") }
                    hello.alpn.append(String(decoding: name.bytes, as: UTF8.self))
                }
            default:
                break
            }
        }
        return .clientHello(hello)
    }

    private struct Reader {
        var bytes: ArraySlice<UInt8>

        var remaining: Int { self.bytes.count }

        mutating func u8() -> UInt8? {
            guard let value = self.bytes.first else { return nil }
            self.bytes = self.bytes.dropFirst()
            return value
        }

        mutating func u16() -> UInt16? {
            guard self.bytes.count >= 2 else { return nil }
            let value = UInt16(self.bytes[self.bytes.startIndex]) << 8 | UInt16(self.bytes[self.bytes.startIndex + 1])
            self.bytes = self.bytes.dropFirst(2)
            return value
        }

        mutating func skip(_ count: Int) -> Bool {
            guard self.bytes.count >= count else { return false }
            self.bytes = self.bytes.dropFirst(count)
            return true
        }

        mutating func sub(_ count: Int) -> Reader? {
            guard self.bytes.count >= count else { return nil }
            let sub = Reader(bytes: self.bytes.prefix(count))
            self.bytes = self.bytes.dropFirst(count)
            return sub
        }
    }
}
