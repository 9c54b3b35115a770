/// The one error type of the Daemon module: a problem the daemon or a job cannot work around
/// (no model to load, a checkpoint that cannot be read, a port that cannot be bound), said in
/// one line for the operator.
public struct DaemonError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}
