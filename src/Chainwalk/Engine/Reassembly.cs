using System.Buffers.Binary;
using System.Globalization;
using System.Text.Json.Nodes;
using Chainwalk.Net;
using Chainwalk.Wire;

namespace Chainwalk.Engine;

/// <summary>
/// IP fragment reassembly (net/ipv4/ip_fragment.c, net/ipv6/reassembly.c, net/ipv6/netfilter/nf_conntrack_reasm.c):
/// fragments are queued by (source, destination, ID, protocol) until the datagram is whole. An overlapping
/// fragment discards the whole queue (inet_frag_queue_insert → IPFRAG_OVERLAP); a queue older than
/// net.ipv4.ipfrag_time / net.ipv6.ip6frag_time (30 s) is dropped when next looked at.
/// Kept in the runtime state so that fragments of one datagram may arrive in separate commands.
/// </summary>
public sealed class Reassembly : IRuntimeState
{
    public const string StateKey = "ip:reassembly";

    private sealed class Queue
    {
        public double Created;
        public byte[]? FirstHeader;
        public int End = -1;
        public int MaxFragment;
        public SortedDictionary<int, byte[]> Pieces { get; } = new();
    }

    private readonly Dictionary<string, Queue> _queues = new(StringComparer.Ordinal);

    /// <summary>
    /// Adds a fragment. Returns the whole datagram once every piece is there (and the largest fragment size
    /// seen, which output re-fragmentation keeps to), null while it is incomplete or when the queue was discarded.
    /// </summary>
    public byte[]? Add(Packet p, double now, double timeout, out int maxFragment, out bool discarded)
    {
        maxFragment = 0;
        discarded = false;
        string key = Key(p);
        foreach (string k in _queues.Where(kv => now - kv.Value.Created > timeout).Select(kv => kv.Key).ToList()) _queues.Remove(k);
        if (!_queues.TryGetValue(key, out Queue? q))
        {
            q = new Queue { Created = now };
            _queues[key] = q;
        }
        int offset = p.FragmentOffset;
        ReadOnlySpan<byte> data = p.Family == IpFamily.V4
            ? p.Bytes.AsSpan(p.IpHeaderLength, p.TotalLength - p.IpHeaderLength)
            : p.Bytes.AsSpan(p.TransportOffset, p.TotalLength - p.TransportOffset);
        // ip_frag_queue: a non-last fragment's data is cut to a multiple of 8 bytes; nothing left discards the queue.
        if (p.MoreFragments) data = data[..(data.Length & ~7)];
        int end = offset + data.Length;
        bool overlap = (!p.MoreFragments && q.End >= 0 && q.End != end) || (p.MoreFragments && q.End >= 0 && end > q.End)
            || data.Length == 0;
        foreach (var (o, piece) in q.Pieces)
        {
            if (o < end && offset < o + piece.Length && !(o == offset && piece.Length == data.Length)) overlap = true;
        }
        if (overlap)
        {
            _queues.Remove(key);
            discarded = true;
            return null;
        }
        q.Pieces[offset] = data.ToArray();
        q.MaxFragment = Math.Max(q.MaxFragment, p.TotalLength);
        if (!p.MoreFragments) q.End = end;
        if (offset == 0) q.FirstHeader = p.Family == IpFamily.V4 ? p.Bytes[..p.IpHeaderLength] : UnfragmentableV6(p);
        if (q.End < 0 || q.FirstHeader is null) return null;
        int covered = 0;
        foreach (var (o, piece) in q.Pieces)
        {
            if (o > covered) return null;
            covered = Math.Max(covered, o + piece.Length);
        }
        if (covered < q.End) return null;
        _queues.Remove(key);
        maxFragment = q.MaxFragment;
        return Join(p.Family, q);
    }

    private static string Key(Packet p) =>
        string.Create(CultureInfo.InvariantCulture, $"{(int)p.Family}/{p.Source}/{p.Destination}/{p.FragmentId}/{(p.Family == IpFamily.V4 ? p.Protocol : 0)}");

    /// <summary>IPv6: the fixed header and the extension headers before the fragment header, with the fragment header's next header spliced in.</summary>
    private static byte[] UnfragmentableV6(Packet p)
    {
        // The transport offset of a fragment is after the fragment header (8 bytes); what is before it stays.
        int fragHeaderAt = p.TransportOffset - 8;
        byte next = p.Bytes[fragHeaderAt];
        byte[] h = p.Bytes[..fragHeaderAt];
        // Whoever pointed at the fragment header (44) now points at its next header.
        int prev = 6, at = 40;
        while (at < fragHeaderAt)
        {
            prev = at;
            at += (p.Bytes[at + 1] + 1) * 8;
        }
        h[prev] = next;
        return h;
    }

    private static byte[] Join(IpFamily family, Queue q)
    {
        byte[] head = q.FirstHeader!;
        byte[] whole = new byte[head.Length + q.End];
        head.CopyTo(whole, 0);
        foreach (var (o, piece) in q.Pieces) piece.CopyTo(whole, head.Length + o);
        if (family == IpFamily.V4)
        {
            BinaryPrimitives.WriteUInt16BigEndian(whole.AsSpan(2), (ushort)whole.Length);
            ushort frag = BinaryPrimitives.ReadUInt16BigEndian(whole.AsSpan(6));
            BinaryPrimitives.WriteUInt16BigEndian(whole.AsSpan(6), (ushort)(frag & 0x4000));
            if (Ipv4Header.TryCreate(whole, out Ipv4Header ip)) ip.UpdateChecksum();
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(whole.AsSpan(4), (ushort)(whole.Length - 40));
        }
        return whole;
    }

    public JsonNode? Save()
    {
        if (_queues.Count == 0) return null;
        var o = new JsonObject();
        foreach (var (key, q) in _queues)
        {
            var pieces = new JsonObject();
            foreach (var (off, data) in q.Pieces) pieces[off.ToString(CultureInfo.InvariantCulture)] = Convert.ToHexStringLower(data);
            o[key] = new JsonObject
            {
                ["created"] = q.Created,
                ["first"] = q.FirstHeader is null ? null : Convert.ToHexStringLower(q.FirstHeader),
                ["end"] = q.End,
                ["max"] = q.MaxFragment,
                ["pieces"] = pieces,
            };
        }
        return o;
    }

    public void Load(JsonNode node)
    {
        _queues.Clear();
        if (node is not JsonObject o) return;
        foreach (var (key, value) in o)
        {
            if (value is not JsonObject v) continue;
            var q = new Queue
            {
                Created = v["created"]?.GetValue<double>() ?? 0,
                FirstHeader = v["first"] is { } f ? Convert.FromHexString(f.GetValue<string>()) : null,
                End = v["end"]?.GetValue<int>() ?? -1,
                MaxFragment = v["max"]?.GetValue<int>() ?? 0,
            };
            if (v["pieces"] is JsonObject pieces)
            {
                foreach (var (off, hex) in pieces)
                    q.Pieces[int.Parse(off, CultureInfo.InvariantCulture)] = Convert.FromHexString(hex!.GetValue<string>());
            }
            _queues[key] = q;
        }
    }
}
