import CLibFuzzer
import MeshConfig
@testable import MeshCore

/// The config pipeline on an arbitrary YAML file: decode (every node with file:line), validate, and,
/// when there are no errors, compile the gateway snapshot. Diagnostics are fine; a trap is not.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let result = ConfigLoader.load(files: [ConfigFile(path: "conf/fuzz.yaml", contents: text)])
    precondition((result.configuration == nil) == result.diagnostics.hasErrors)
    if let configuration = result.configuration {
        _ = try? SnapshotCompiler.compileGateway(configuration, generation: 1)
    }
    return 0
}

@_cdecl("FuzzConfig_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, fuzzOne)
}
