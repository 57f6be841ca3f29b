import CLibFuzzer
@testable import MeshCore

/// The TLS inspector's ClientHello parser on arbitrary bytes: any verdict, never a trap; a hello it
/// accepts parses the same again.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let verdict = ClientHelloParser.parse(bytes)
    precondition(ClientHelloParser.parse(bytes[...]) == verdict, "the parse depends only on the bytes")
    // Byte by byte, as a TCP stream may deliver it: every prefix gets some verdict.
    for end in stride(from: 0, through: min(bytes.count, 512), by: 7) {
        _ = ClientHelloParser.parse(bytes.prefix(end))
    }
    return 0
}

@_cdecl("FuzzClientHello_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, fuzzOne)
}
