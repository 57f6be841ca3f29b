// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "meshgate",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "meshgate", targets: ["meshgate"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "5.0.1"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.7.1"),
    ],
    targets: [
        // A small C face over RE2 (linear-time matching, Envoy's engine for Istio's regex matches).
        // Debian/Ubuntu: libre2-dev.
        .target(
            name: "CRE2",
            linkerSettings: [.linkedLibrary("re2")]
        ),
        // PURE: resource types, decoding with file:line, validation, defaults. No NIO, no sockets, no clocks.
        .target(
            name: "MeshConfig",
            dependencies: [
                "CRE2",
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // The shared core networking module used by both roles.
        .target(
            name: "MeshCore",
            dependencies: [
                "MeshConfig",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "JWTKit", package: "jwt-kit"),
            ]
        ),
        // The process: roles, signals, reload, drain, sd_notify, sample apps.
        .target(
            name: "MeshgateServer",
            dependencies: [
                "MeshCore",
                "MeshConfig",
                "MeshCA",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // The mesh CA: root and SPIFFE workload certificates (X.509-SVIDs), rotation policy. No openssl.
        .target(
            name: "MeshCA",
            dependencies: [
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ]
        ),
        // The tcp-echo and httpbin-like services used by the demo and the tests. Not part of the proxy.
        .target(
            name: "MeshSampleApps",
            dependencies: [
                "MeshCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
            ]
        ),
        .executableTarget(
            name: "meshgate",
            dependencies: [
                "MeshgateServer",
                "MeshConfig",
                "MeshCA",
                "MeshSampleApps",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "MeshConfigTests", dependencies: ["MeshConfig"]),
        .testTarget(
            name: "MeshCATests",
            dependencies: [
                "MeshCA",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ]
        ),
        .testTarget(
            name: "MeshSampleAppsTests",
            dependencies: [
                "MeshSampleApps",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "MeshCoreTests",
            dependencies: [
                "MeshCore",
                "MeshConfig",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
    ]
)

// libFuzzer targets, only when MESHGATE_FUZZ=1 (scripts/fuzz.sh builds them into .build-fuzz with
// -sanitize=fuzzer,address -parse-as-library, product by product); a normal build never sees them.
// They `@testable import` the modules, so they build in the debug configuration (testing enabled).
if Context.environment["MESHGATE_FUZZ"] == "1" {
    let nio: [Target.Dependency] = [
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOEmbedded", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
    ]
    package.targets.append(.target(name: "CLibFuzzer", path: "Fuzz/CLibFuzzer"))
    for name in ["FuzzRouting", "FuzzConfig", "FuzzClientHello", "FuzzPeerMetadata", "FuzzHTTP1"] {
        package.targets.append(
            .executableTarget(name: name, dependencies: ["CLibFuzzer", "MeshCore", "MeshConfig"] + nio, path: "Fuzz/\(name)")
        )
        package.products.append(.executable(name: name, targets: [name]))
    }
}
