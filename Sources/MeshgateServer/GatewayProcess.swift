/// The gateway role: load, bind, serve, reload on SIGHUP, drain on SIGTERM.
public enum GatewayProcess {
    public static func run(configDirectory: String) async -> Int32 {
        1
    }
}
