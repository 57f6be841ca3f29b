import MeshConfig

/// Istio's peer metadata exchange, wire-compatible with `istio/proxy`'s metadata_exchange filters.
/// Pure: bytes and header values in, ``PeerMetadata`` out.
///
/// - **TCP** (mTLS with ALPN `istio-peer-exchange`): right after the handshake each side writes one
///   frame and reads the peer's from the front of the stream: an 8-byte header, `uint32 magic`
///   (`0x3D230467`) then `uint32 length`, both big-endian, followed by `length` bytes of a
///   `google.protobuf.Any` { `type_url` = `type.googleapis.com/google.protobuf.Struct`, `value` = a
///   deterministically serialized Struct { `x-envoy-peer-metadata`: the node metadata Struct,
///   `x-envoy-peer-metadata-id`: the node id } }.
/// - **HTTP**: `x-envoy-peer-metadata` = base64 of the serialized node metadata Struct, and
///   `x-envoy-peer-metadata-id` = the node id; the receiver removes both.
public enum PeerMetadataExchange {
    /// The ALPN protocol a client offers (with `istio`) to ask for the TCP exchange.
    public static let alpn = "istio-peer-exchange"
    /// The first four bytes of a frame.
    public static let magic: UInt32 = 0x3D23_0467
    public static let headerSize = 8
    /// The largest payload accepted. Real ones are a few hundred bytes to a few KiB.
    public static let maximumPayloadSize = 64 * 1024
    public static let structTypeURL = "type.googleapis.com/google.protobuf.Struct"
    /// The payload Struct's key (and the HTTP header) holding the node metadata.
    public static let metadataKey = "x-envoy-peer-metadata"
    /// The payload Struct's key (and the HTTP header) holding the node id.
    public static let metadataIDKey = "x-envoy-peer-metadata-id"

    public enum DecodeResult: Sendable, Hashable {
        /// The bytes so far are a correct start; wait for more.
        case needMoreData
        /// One frame, taking the first `consumed` bytes; what follows belongs to the application.
        case frame(PeerMetadata, consumed: Int)
        /// The stream does not start with the magic: the peer has no metadata exchange filter
        /// (Istio: "Incorrect istio-peer-exchange ALPN magic").
        case wrongMagic
        /// The magic matched but the length or the payload is not acceptable (Istio: "Metadata Not found").
        case malformed(String)
    }

    // MARK: - TCP frame

    /// The frame announcing `metadata`.
    public static func encodeFrame(_ metadata: PeerMetadata) -> [UInt8] {
        var payloadStruct = ProtobufStruct()
        payloadStruct[Self.metadataKey] = .structure(metadata.nodeMetadata)
        payloadStruct[Self.metadataIDKey] = .string(metadata.id)
        // google.protobuf.Any { string type_url = 1; bytes value = 2; }
        var any = ProtobufWriter()
        any.writeString(1, Self.structTypeURL)
        any.writeBytes(2, payloadStruct.serializedBytes())
        var frame: [UInt8] = []
        frame.reserveCapacity(Self.headerSize + any.bytes.count)
        Self.appendBigEndian(Self.magic, to: &frame)
        Self.appendBigEndian(UInt32(any.bytes.count), to: &frame)
        frame += any.bytes
        return frame
    }

    /// Reads a frame from the start of `bytes` (the first bytes the peer sent). Never needs more
    /// than ``headerSize`` + ``maximumPayloadSize`` bytes to decide.
    public static func decodeFrame(_ bytes: some Collection<UInt8>) -> DecodeResult {
        let header = Array(bytes.prefix(Self.headerSize))
        var expectedMagic: [UInt8] = []
        Self.appendBigEndian(Self.magic, to: &expectedMagic)
        let magicPart = min(header.count, 4)
        guard header[..<magicPart].elementsEqual(expectedMagic[..<magicPart]) else { return .wrongMagic }
        guard header.count == Self.headerSize else { return .needMoreData }
        let length = header[4...].reduce(0) { $0 << 8 | Int($1) }
        guard length <= Self.maximumPayloadSize else {
            return .malformed("payload of \(length) bytes is over \(Self.maximumPayloadSize)")
        }
        let payload = Array(bytes.dropFirst(Self.headerSize).prefix(length))
        guard payload.count == length else { return .needMoreData }
        do {
            return .frame(try Self.decodePayload(payload), consumed: Self.headerSize + length)
        } catch {
            return .malformed(error.reason)
        }
    }

    /// The `Any` payload of a frame.
    static func decodePayload(_ payload: [UInt8]) throws(MalformedPeerMetadata) -> PeerMetadata {
        var reader = ProtobufReader(payload)
        var typeURL = ""
        var value: [UInt8] = []
        while let (field, wireType) = try reader.readTag() {
            switch (field, wireType) {
            case (1, .lengthDelimited): typeURL = try reader.readLengthDelimited().readString()
            case (2, .lengthDelimited): value = Array(try reader.readLengthDelimited().remainingBytes)
            case (1, _), (2, _): throw MalformedPeerMetadata("Any field \(field) with wire type \(wireType.rawValue)")
            default: try reader.skip(wireType)
            }
        }
        guard typeURL == Self.structTypeURL else {
            throw MalformedPeerMetadata("Any of type '\(typeURL)', expected \(Self.structTypeURL)")
        }
        let payloadStruct = try ProtobufStruct(serializedBytes: value)
        guard let node = payloadStruct[Self.metadataKey]?.structValue else {
            throw MalformedPeerMetadata("no \(Self.metadataKey) Struct in the payload")
        }
        return PeerMetadata(nodeMetadata: node, id: payloadStruct[Self.metadataIDKey]?.stringValue ?? "")
    }

    private static func appendBigEndian(_ value: UInt32, to bytes: inout [UInt8]) {
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    // MARK: - HTTP headers

    /// The two header values announcing `metadata`: (`x-envoy-peer-metadata`, `x-envoy-peer-metadata-id`).
    public static func headerValues(_ metadata: PeerMetadata) -> (metadata: String, id: String) {
        (Base64.encode(metadata.nodeMetadata.serializedBytes()), metadata.id)
    }

    /// Reads the two header values (the id may be missing). Bounded like a frame.
    public static func decodeHeaders(metadata: String, id: String?) throws(MalformedPeerMetadata) -> PeerMetadata {
        guard metadata.utf8.count <= (Self.maximumPayloadSize + 2) / 3 * 4 else {
            throw MalformedPeerMetadata("\(Self.metadataKey) of \(metadata.utf8.count) bytes is over the limit")
        }
        guard let bytes = Base64.decode(metadata) else {
            throw MalformedPeerMetadata("\(Self.metadataKey) is not base64")
        }
        return PeerMetadata(nodeMetadata: try ProtobufStruct(serializedBytes: bytes), id: id ?? "")
    }
}
