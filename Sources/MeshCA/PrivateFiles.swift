import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The few file operations the CA needs, with the modes it promises: directories and keys that only
/// their owner can read, files replaced atomically (a reader sees the old file or the new one, never
/// half of one), and modes checked before a key is trusted.
enum PrivateFiles {
    /// Creates `path` (and missing parents) if needed. With `restrict`, the directory ends up 0700
    /// even if it existed; otherwise an existing directory keeps its mode.
    static func makeDirectory(_ path: String, restrict: Bool) throws(MeshCAError) {
        var isDirectory: ObjCBool = false
        let existed = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
        if existed, !isDirectory.boolValue {
            throw MeshCAError(.io, "\(path) exists and is not a directory")
        }
        if !existed {
            do {
                try FileManager.default.createDirectory(
                    atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw MeshCAError(.io, "cannot create directory \(path): \(Self.reason(error))")
            }
        }
        if restrict || !existed, chmod(path, 0o700) != 0 {
            throw MeshCAError(.io, "cannot chmod 700 \(path): \(Self.errnoText())")
        }
    }

    /// Writes `text` to `path` with `mode` (not subject to the umask), through a temporary file in
    /// the same directory that is renamed over `path`.
    static func write(_ text: String, to path: String, mode: mode_t) throws(MeshCAError) {
        let temporary = "\(path).tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw MeshCAError(.io, "cannot create \(temporary): \(Self.errnoText())") }
        var failure: String?
        if fchmod(fd, mode) != 0 { failure = "chmod: \(Self.errnoText())" }
        if failure == nil {
            let bytes = Array(text.utf8)
            var written = 0
            while written < bytes.count {
                let result = bytes[written...].withUnsafeBytes { posixWrite(fd, $0.baseAddress, $0.count) }
                if result < 0 {
                    if errno == EINTR { continue }
                    failure = "write: \(Self.errnoText())"
                    break
                }
                written += result
            }
        }
        if failure == nil, fsync(fd) != 0 { failure = "fsync: \(Self.errnoText())" }
        close(fd)
        if failure == nil, rename(temporary, path) != 0 { failure = "rename: \(Self.errnoText())" }
        if let failure {
            unlink(temporary)
            throw MeshCAError(.io, "cannot write \(path): \(failure)")
        }
    }

    /// The whole file as text; a missing file is ``MeshCAError/Code/missingFile``.
    static func read(_ path: String, what: String) throws(MeshCAError) -> String {
        guard FileManager.default.fileExists(atPath: path) else {
            throw MeshCAError(.missingFile, "\(path): no such file (expected the \(what))")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw MeshCAError(.io, "cannot read \(path) (the \(what)): \(Self.errnoText())")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw MeshCAError(.malformedFile, "\(path): the \(what) is not PEM text")
        }
        return text
    }

    /// Refuses a private key that group or others could read (or write): the check `ssh` makes.
    static func requireOwnerOnly(_ path: String, what: String) throws(MeshCAError) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT { throw MeshCAError(.missingFile, "\(path): no such file (expected the \(what))") }
            throw MeshCAError(.io, "cannot stat \(path) (the \(what)): \(Self.errnoText())")
        }
        let mode = info.st_mode & 0o7777
        if mode & 0o077 != 0 {
            throw MeshCAError(
                .insecureKeyFile,
                "\(path) has mode \(Self.octal(mode)): the \(what) must be readable by its owner only; run chmod 600 \(path)")
        }
    }

    /// The permission bits of `path`, or nil when it cannot be read.
    static func mode(of path: String) -> mode_t? {
        var info = stat()
        return stat(path, &info) == 0 ? info.st_mode & 0o7777 : nil
    }

    static func octal(_ mode: mode_t) -> String {
        let digits = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : "\(directory)/\(name)"
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }

    private static func reason(_ error: any Error) -> String {
        (error as NSError).localizedFailureReason ?? "\(error)"
    }
}

/// The C `write`, out of reach of ``PrivateFiles/write(_:to:mode:)``'s name.
private func posixWrite(_ fd: Int32, _ bytes: UnsafeRawPointer?, _ count: Int) -> Int {
    write(fd, bytes, count)
}
