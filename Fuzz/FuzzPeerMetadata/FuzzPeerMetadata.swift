import CLibFuzzer
@testable import MeshCore

/// Istio's peer-metadata exchange decoders on arbitrary bytes: the TCP frame (magic, length,
/// protobuf Any{Struct}), the bare protobuf Struct, and the HTTP header form (base64 protobuf).
/// What decodes must encode and decode back to the same metadata.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if case .frame(let metadata, let consumed) = PeerMetadataExchange.decodeFrame(bytes) {
        precondition(consumed <= bytes.count)
        let again = PeerMetadataExchange.decodeFrame(PeerMetadataExchange.encodeFrame(metadata))
        guard case .frame(let decoded, _) = again, decoded == metadata else {
            preconditionFailure("frame round trip: \(metadata) -> \(again)")
        }
    }
    if let value = try? ProtobufStruct(serializedBytes: bytes) {
        precondition((try? ProtobufStruct(serializedBytes: value.serializedBytes())) == value, "Struct round trip")
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
