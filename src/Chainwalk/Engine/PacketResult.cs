using Chainwalk.Wire;

namespace Chainwalk.Engine;

/// <summary>A packet that left the host: the interface and the IP bytes as they left (after NAT and mangle).</summary>
public sealed record OutputPacket(string Interface, byte[] Bytes, string Kind)
{
    public Packet Packet => Packet.Parse(Bytes);
}

/// <summary>What happened to one packet: its fate, what left the host, log lines, and (when asked) the trace.</summary>
public sealed class PacketResult
{
    /// <summary>
    /// The fate as the README documents it: <c>delivered-local</c>, <c>forwarded:IFACE</c>, <c>sent:IFACE</c>,
    /// <c>dropped</c>, <c>rejected:NAME</c>, <c>queued:N</c>; usually one entry.
    /// </summary>
    public List<string> Fate { get; } = new(1);

    /// <summary>Why the packet was dropped when not by a rule (routing, TTL, malformed header …).</summary>
    public string? DropReason { get; set; }

    public List<OutputPacket> Outputs { get; } = new();

    /// <summary>Kernel log lines (LOG target, TRACE lines).</summary>
    public List<string> Logs { get; } = new();

    /// <summary>The events, when the trace was asked for; null otherwise.</summary>
    public List<TraceEvent>? Trace { get; set; }

    /// <summary>The conntrack state the packet had (for <c>ctstate</c>), or null when not tracked.</summary>
    public string? CtState { get; set; }

    /// <summary>The packet's conntrack entry (a Conntrack.ConnEntry) when it had one.</summary>
    public object? Connection { get; set; }

    /// <summary>The REJECT --reject-with name when a REJECT rule decided.</summary>
    public string? RejectedWith { get; set; }

    /// <summary>Set when the packet could not be processed at all (unparseable bytes, unknown interface …).</summary>
    public string? Error { get; set; }

    /// <summary>The packet as it entered.</summary>
    public byte[]? Input { get; set; }

    public string? InputInterface { get; set; }

    public bool Local { get; set; }
}
