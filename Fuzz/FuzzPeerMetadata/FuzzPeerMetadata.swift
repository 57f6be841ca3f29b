import CLibFuzzer
@testable import MeshCore

/// Istio's peer-metadata exchange decoders on arbitrary bytes: the TCP frame (magic, length,
/// protobuf Any{Struct}), the bare protobuf Struct, and the HTTP header form (base64 protobuf).
/// What decodes must encode, decode and encode again to the same bytes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // Round trips compare bytes: a Struct may hold a NaN number, never equal to itself.
    if case .frame(let metadata, let consumed) = PeerMetadataExchange.decodeFrame(bytes) {
        precondition(consumed <= bytes.count)
        let encoded = PeerMetadataExchange.encodeFrame(metadata)
        let again = PeerMetadataExchange.decodeFrame(encoded)
        guard case .frame(let decoded, encoded.count) = again, PeerMetadataExchange.encodeFrame(decoded) == encoded else {
            preconditionFailure("frame round trip: \(metadata) -> \(again)")
        }
    }
    if let value = try? ProtobufStruct(serializedBytes: bytes) {
        let serialized = value.serializedBytes()
        precondition((try? ProtobufStruct(serializedBytes: serialized))?.serializedBytes() == serialized, "Struct round trip")
    }
    let text = String(decoding: bytes, as: UTF8.self)
    let newline = text.firstIndex(of: "\n")
    _ = try? PeerMetadataExchange.decodeHeaders(
        metadata: String(text[..<(newline ?? text.endIndex)]),
        id: newline.map { String(text[text.index(after: $0)...]) }
    )
    return 0
}

@_cdecl("FuzzPeerMetadata_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, fuzzOne)
}
