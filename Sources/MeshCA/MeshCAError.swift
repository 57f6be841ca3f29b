/// Every way the mesh CA can refuse: a struct over a private enum, so new cases do not break
/// callers, and each error carries a message that names what was wrong and where.
public struct MeshCAError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of problem this is; compare with the static members (`error.code == .insecureKeyFile`).
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: Sendable, Hashable {
            case invalidIdentity, insecureKeyFile, missingFile, malformedFile, alreadyExists, invalidTTL, io
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A trust domain, namespace or service account that SPIFFE (and Istio) would not accept.
        public static let invalidIdentity = Code(.invalidIdentity)
        /// A private key file readable by group or others.
        public static let insecureKeyFile = Code(.insecureKeyFile)
        /// A file the CA or workload directory must hold is not there.
        public static let missingFile = Code(.missingFile)
        /// A file that is not the PEM certificate or key it should be, or one that does not fit the rest.
        public static let malformedFile = Code(.malformedFile)
        /// `ca init` into a directory that already holds a root.
        public static let alreadyExists = Code(.alreadyExists)
        /// A certificate lifetime that is zero, negative, over the maximum or past the root's expiry.
        public static let invalidTTL = Code(.invalidTTL)
        /// The file system refused (permissions, disk full, ...).
        public static let io = Code(.io)

        public var description: String { "\(self.base)" }
    }

    public let code: Code
    /// One line for the operator: what, where, and what to do about it.
    public let message: String

    init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { self.message }
}
