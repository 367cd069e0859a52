using Chainwalk.Wire;

namespace Chainwalk.Engine;

/// <summary>A packet that left the host: the interface and the IP bytes as they left (after NAT and mangle).</summary>
public sealed record OutputPacket(string Interface, byte[] Bytes, string Kind)
{
    /// <summary>The IP bytes as they left (a reused result's record is given the next packet's bytes).</summary>
    public byte[] Bytes { get; internal set; } = Bytes;

    public Packet Packet => Packet.Parse(Bytes);
}

/// <summary>What happened to one packet: its fate, what left the host, log lines, and (when asked) the trace.</summary>
/// <remarks>
/// A result given back to <see cref="Netfilter.Process(PacketInput, PacketResult)"/> is reused: it, its lists and
/// its output packets (their bytes too) describe the latest packet only, and the objects the pipeline needs per
/// packet (skb, parsed packet, byte copy, output records) are taken from it again instead of allocated.
/// </remarks>
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

    /// <summary>The printk level of each line of <see cref="Logs"/> (LOG's --log-level; 4 for TRACE lines).</summary>
    public List<byte> LogLevels { get; } = new();

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

    // ---------------------------------------------------------------- what a reused result lends to the next packet

    /// <summary>The top-level skb of the latest packet, reset for the next one.</summary>
    internal Skb? SpareSkb;

    /// <summary>The packet (and its byte array) the latest input was copied into; reused when the next is as long.</summary>
    internal Packet? SparePacket;

    /// <summary>
    /// Set by a burst (<see cref="Netfilter.Process(ReadOnlySpan{PacketInput}, ReadOnlySpan{PacketResult})"/>) just before
    /// this result's packet runs: the conntrack prefetch token of its bytes, computed and followed (slot, entry, the rule
    /// walk's arrival index) some packets ahead, so the packet does not hash its tuple again. <see cref="NotAhead"/>
    /// otherwise (the packet's own run fetches); taken back to it by the run that reads it.
    /// </summary>
    internal long Ahead = NotAhead;

    /// <summary><see cref="Ahead"/> when nothing was fetched ahead.</summary>
    internal const long NotAhead = long.MinValue;

    /// <summary>Output records of earlier packets, taken again when a packet leaves the same way (interface and kind).</summary>
    private List<OutputPacket>? _spareOutputs;

    private const int MaxSpareOutputs = 8;

    /// <summary>The record of the latest packet that left once (the usual case), taken again before the spares are searched.</summary>
    private OutputPacket? _lastOutput;

    /// <summary>Back to the state of a new result, keeping the lists' storage and the spare objects (called only by Netfilter.Process, which then sets the input's fields).</summary>
    internal void Reset()
    {
        // One entry (the usual packet) is taken off as the last: List.Clear would clear the array through a call.
        if (Fate.Count == 1) Fate.RemoveAt(0);
        else Fate.Clear();
        DropReason = null;
        if (Outputs.Count == 1 && _lastOutput is null)
        {
            // The usual packet leaves once: its record waits beside the spares for the next packet that leaves the same way.
            _lastOutput = Outputs[0];
            Outputs.RemoveAt(0);
        }
        else if (Outputs.Count > 0)
        {
            // Kept over packets that send nothing (a replay alternates received and sent packets); the latest few.
            _spareOutputs ??= new List<OutputPacket>(2);
            foreach (OutputPacket o in Outputs)
            {
                if (_spareOutputs.Count == MaxSpareOutputs) _spareOutputs.RemoveAt(0);
                _spareOutputs.Add(o);
            }
            Outputs.Clear();
        }
        Logs.Clear();
        LogLevels.Clear();
        Trace = null;
        CtState = null;
        Connection = null;
        RejectedWith = null;
        Error = null;
        // Input and InputInterface are not cleared: Netfilter.Process sets both for the next packet right after.
        Local = false;
    }

    /// <summary>
    /// An output record of the previous packet that left the same way (same interface and kind), given these bytes, or a
    /// new one (a replay hands over packets of many lengths, each its own byte array).
    /// </summary>
    internal OutputPacket Output(string device, byte[] bytes, string kind)
    {
        if (_lastOutput is { } last && (ReferenceEquals(last.Interface, device) || string.Equals(last.Interface, device, StringComparison.Ordinal))
            && (ReferenceEquals(last.Kind, kind) || string.Equals(last.Kind, kind, StringComparison.Ordinal)))
        {
            _lastOutput = null;
            last.Bytes = bytes;
            return last;
        }
        if (_spareOutputs is { Count: > 0 } spare)
        {
            for (int i = 0; i < spare.Count; i++)
            {
                OutputPacket o = spare[i];
                if (string.Equals(o.Interface, device, StringComparison.Ordinal) && string.Equals(o.Kind, kind, StringComparison.Ordinal))
                {
                    spare.RemoveAt(i);
                    o.Bytes = bytes;
                    return o;
                }
            }
        }
        return new OutputPacket(device, bytes, kind);
    }
}
