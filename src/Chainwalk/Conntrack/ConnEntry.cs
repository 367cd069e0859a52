using Chainwalk.Net;

namespace Chainwalk.Conntrack;

/// <summary>Status bits of a connection (enum ip_conntrack_status, include/uapi/linux/netfilter/nf_conntrack_common.h).</summary>
[Flags]
public enum ConnStatus : uint
{
    None = 0,
    Expected = 1 << 0,
    SeenReply = 1 << 1,
    Assured = 1 << 2,
    Confirmed = 1 << 3,
    SrcNat = 1 << 4,
    DstNat = 1 << 5,
    SeqAdjust = 1 << 6,
    SrcNatDone = 1 << 7,
    DstNatDone = 1 << 8,
    Dying = 1 << 9,
    FixedTimeout = 1 << 10,
    Template = 1 << 11,
    Untracked = 1 << 12,
    Helper = 1 << 13,
    Offload = 1 << 14,
}

/// <summary>Direction of a packet in its connection (enum ip_conntrack_dir).</summary>
public enum ConnDirection : byte
{
    Original = 0,
    Reply = 1,
}

/// <summary>Packets and bytes one direction has seen (struct nf_conn_counter), kept when nf_conntrack_acct is on.</summary>
public struct ConnCounter
{
    public ulong Packets;
    public ulong Bytes;
}

/// <summary>
/// A tracked connection (struct nf_conn): its two tuples, status bits, protocol state, timeout on the host
/// clock, mark, secmark, labels, zone and (with accounting) per-direction counters. NAT fills
/// <see cref="Reply"/> differently and sets <see cref="ConnStatus.SrcNat"/>/<see cref="ConnStatus.DstNat"/>.
/// </summary>
/// <remarks>
/// Kept compact, as the kernel keeps nf_conn small and puts what few connections use in extensions
/// (nf_ct_ext: labels, helper, NAT, event mask): the tuples are stored field by field (IPv4 addresses in 32 bits,
/// IPv6 addresses in a side object), and labels, helper, event mask, secmark and accounting counters live in
/// <see cref="ConnExtras"/>, made on the first non-default write. What every NATed connection of a kube-proxy node
/// has (the by-source link, the MASQUERADE device as a one-byte number) is in the entry itself.
/// </remarks>
public sealed class ConnEntry
{
    // The two tuples, field by field. Addresses: IPv4 in the uint fields; IPv6 in _v6 (null for IPv4 tuples).
    private uint _os, _od, _rs, _rd;
    private ConnAddresses6? _v6;
    private ushort _osp, _odp, _rsp, _rdp;
    private IpFamily _family, _replyFamily;
    private byte _proto, _replyProto;
    private ConnExtras? _extras;

    /// <summary>NAT's by-source chain (nf_nat_bysource): the next older entry with the same source key.</summary>
    private ConnEntry? _nextBySource;

    /// <summary>The MASQUERADE device as its <see cref="DeviceNames"/> number (0: none, or kept in the extras).</summary>
    private byte _masqueradeDevice;

    public ConnEntry(ConnTuple original, ConnTuple reply)
    {
        Original = original;
        Reply = reply;
    }

    /// <summary>The four addresses of a connection with an IPv6 tuple.</summary>
    private sealed class ConnAddresses6
    {
        public UInt128 OriginalSource, OriginalDestination, ReplySource, ReplyDestination;
    }

    private static bool Fits32(in ConnTuple t) => t.Family == IpFamily.V4 && t.Source <= uint.MaxValue && t.Destination <= uint.MaxValue;

    public ConnTuple Original
    {
        get => new(_family, _proto, _v6 is { } v ? v.OriginalSource : _os, _v6 is { } w ? w.OriginalDestination : _od, _osp, _odp);
        set
        {
            if (_v6 is null && !Fits32(value)) Widen();
            _family = value.Family;
            _proto = value.Protocol;
            if (_v6 is { } v)
            {
                v.OriginalSource = value.Source;
                v.OriginalDestination = value.Destination;
            }
            else
            {
                _os = (uint)value.Source;
                _od = (uint)value.Destination;
            }
            _osp = value.SourcePort;
            _odp = value.DestinationPort;
        }
    }

    /// <summary>The tuple replies carry (the inverse of <see cref="Original"/> until NAT changes it).</summary>
    public ConnTuple Reply
    {
        get => new(_replyFamily, _replyProto, _v6 is { } v ? v.ReplySource : _rs, _v6 is { } w ? w.ReplyDestination : _rd, _rsp, _rdp);
        set
        {
            if (_v6 is null && !Fits32(value)) Widen();
            _replyFamily = value.Family;
            _replyProto = value.Protocol;
            if (_v6 is { } v)
            {
                v.ReplySource = value.Source;
                v.ReplyDestination = value.Destination;
            }
            else
            {
                _rs = (uint)value.Source;
                _rd = (uint)value.Destination;
            }
            _rsp = value.SourcePort;
            _rdp = value.DestinationPort;
        }
    }

    /// <summary>
    /// The inverse of <see cref="Reply"/> (what a packet in the original direction looks like after the bindings made so
    /// far), read from the fields without building the reply tuple first; false when it has none (an ICMP type without
    /// an answer), as <see cref="ConnTuple.TryInvert"/>.
    /// </summary>
    internal bool TryReplyInverse(out ConnTuple inverse)
    {
        if (_v6 is null && !ConnTuple.IsIcmpProtocol(_replyFamily, _replyProto))
        {
            inverse = new ConnTuple(_replyFamily, _replyProto, _rd, _rs, _rdp, _rsp);
            return true;
        }
        return Reply.TryInvert(out inverse);
    }

    /// <summary>
    /// nf_conntrack_alter_reply with the inverse of <paramref name="t"/>: written into the fields (the kernel inverts into
    /// the entry's tuple); false, and nothing changed, when <paramref name="t"/> has no inverse.
    /// </summary>
    internal bool TrySetReplyInverseOf(in ConnTuple t)
    {
        if (_v6 is null && !t.IsIcmp && Fits32(t))
        {
            _replyFamily = t.Family;
            _replyProto = t.Protocol;
            _rs = (uint)t.Destination;
            _rd = (uint)t.Source;
            _rsp = t.DestinationPort;
            _rdp = t.SourcePort;
            return true;
        }
        if (!t.TryInvert(out ConnTuple reply)) return false;
        Reply = reply;
        return true;
    }

    /// <summary>
    /// <see cref="TrySetReplyInverseOf"/> for an IPv4 TCP/UDP entry held in 32-bit fields whose reply keeps its family and
    /// protocol: the reply's addresses and ports written as given (the caller has checked the shape).
    /// </summary>
    internal void SetReplyV4(uint source, uint destination, ushort sourcePort, ushort destinationPort)
    {
        _rs = source;
        _rd = destination;
        _rsp = sourcePort;
        _rdp = destinationPort;
    }

    /// <summary>Moves the addresses to the side object (an IPv6 tuple, or any address beyond 32 bits).</summary>
    private void Widen() => _v6 = new ConnAddresses6 { OriginalSource = _os, OriginalDestination = _od, ReplySource = _rs, ReplyDestination = _rd };

    public ConnTuple Tuple(ConnDirection dir) => dir == ConnDirection.Original ? Original : Reply;

    /// <summary>Whether the tuple of <paramref name="dir"/> is <paramref name="t"/> (without building it).</summary>
    internal bool TupleIs(ConnDirection dir, in ConnTuple t)
    {
        if (dir == ConnDirection.Original)
        {
            return _family == t.Family && _proto == t.Protocol && _osp == t.SourcePort && _odp == t.DestinationPort
                && (_v6 is { } v ? v.OriginalSource == t.Source && v.OriginalDestination == t.Destination : _os == t.Source && _od == t.Destination);
        }
        return _replyFamily == t.Family && _replyProto == t.Protocol && _rsp == t.SourcePort && _rdp == t.DestinationPort
            && (_v6 is { } w ? w.ReplySource == t.Source && w.ReplyDestination == t.Destination : _rs == t.Source && _rd == t.Destination);
    }

    /// <summary><see cref="TupleIs"/> for an IPv4 tuple given by its fields.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal bool TupleIsV4(ConnDirection dir, byte protocol, uint source, uint destination, ushort sourcePort, ushort destinationPort)
    {
        if (dir == ConnDirection.Original)
        {
            return _family == IpFamily.V4 && _proto == protocol && _osp == sourcePort && _odp == destinationPort
                && (_v6 is { } v ? v.OriginalSource == source && v.OriginalDestination == destination : _os == source && _od == destination);
        }
        return _replyFamily == IpFamily.V4 && _replyProto == protocol && _rsp == sourcePort && _rdp == destinationPort
            && (_v6 is { } w ? w.ReplySource == source && w.ReplyDestination == destination : _rs == source && _rd == destination);
    }

    /// <summary>Whether the original tuple's source address and port are these (NAT's by-source index), without building the tuple.</summary>
    internal bool OriginalSourceIs(UInt128 source, ushort port) =>
        _osp == port && (_v6 is { } v ? v.OriginalSource == source : _os == source);

    /// <summary>Whether <paramref name="other"/>'s original tuple is this one's (<c>Original == other.Original</c>, from the fields).</summary>
    internal bool OriginalEquals(ConnEntry other)
    {
        if (_v6 is not null || other._v6 is not null) return Original == other.Original;
        return _family == other._family && _proto == other._proto && _os == other._os && _od == other._od && _osp == other._osp && _odp == other._odp;
    }

    /// <summary>The original tuple's source address and port (NAT's by-source key), without building the tuple.</summary>
    internal UInt128 OriginalSource => _v6 is { } v ? v.OriginalSource : _os;

    internal ushort OriginalSourcePort => _osp;

    /// <summary>
    /// The tuple of <paramref name="dir"/> as IPv4 fields, without building it; false when it is not an IPv4 tuple held in
    /// 32-bit fields (IPv6, or an address beyond 32 bits: then the tuple itself is read).
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal bool TryTupleV4(ConnDirection dir, out byte protocol, out uint source, out uint destination, out ushort sourcePort, out ushort destinationPort)
    {
        bool original = dir == ConnDirection.Original;
        protocol = original ? _proto : _replyProto;
        source = original ? _os : _rs;
        destination = original ? _od : _rd;
        sourcePort = original ? _osp : _rsp;
        destinationPort = original ? _odp : _rdp;
        return _v6 is null && (original ? _family : _replyFamily) == IpFamily.V4;
    }

    /// <summary>The IPv4 source address of the tuple of <paramref name="dir"/> (without building the tuple); 0 for a wider address.</summary>
    internal uint SourceV4(ConnDirection dir) => _v6 is not null ? 0 : dir == ConnDirection.Original ? _os : _rs;

    /// <summary>
    /// What nf_nat_packet makes a TCP or UDP packet of <paramref name="dir"/> carry for <paramref name="manip"/> (the
    /// inverse of the other direction's tuple: its destination as the new source, its source as the new destination), read
    /// from the fields without building or inverting a tuple. False for anything but an IPv4 TCP/UDP connection.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal bool TryNatTargetV4(ConnDirection dir, Nat.NatManip manip, out uint address, out ushort port)
    {
        address = 0;
        port = 0;
        if (_v6 is not null || _family != IpFamily.V4 || _replyFamily != IpFamily.V4) return false;
        bool original = dir == ConnDirection.Original;
        byte otherProto = original ? _replyProto : _proto;
        if (otherProto is not (Wire.IpProtocol.Tcp or Wire.IpProtocol.Udp)) return false;
        if (manip == Nat.NatManip.Src)
        {
            address = original ? _rd : _od;
            port = original ? _rdp : _odp;
        }
        else
        {
            address = original ? _rs : _os;
            port = original ? _rsp : _osp;
        }
        return true;
    }

    public IpFamily Family => _family;

    public byte Protocol => _proto;

    public ConnStatus Status { get; set; }

    /// <summary>When the entry expires, in seconds on the host clock.</summary>
    public double Timeout { get; set; }

    /// <summary>ct->mark (CONNMARK, -m connmark).</summary>
    public uint Mark { get; set; }

    /// <summary>The conntrack zone (CT --zone); 0 is the default zone.</summary>
    public ushort Zone { get; set; }

    /// <summary>Which directions <see cref="Zone"/> applies to (XT_CT_ZONE_DIR_ORIG | _REPL; 0 = both).</summary>
    public byte ZoneDirections { get; set; }

    /// <summary>What few connections carry (the kernel's conntrack extensions), made on the first non-default write.</summary>
    private sealed class ConnExtras
    {
        public uint Secmark;
        public UInt128 Labels;
        public string? Helper;
        public uint EventMask;
        public string? MasqueradeDevice;
        public ConnCounter[]? Counters;
    }

    private ConnExtras Extras => _extras ??= new ConnExtras();

    /// <summary>ct->secmark (CONNSECMARK).</summary>
    public uint Secmark
    {
        get => _extras?.Secmark ?? 0;
        set
        {
            if (value != 0 || _extras is not null) Extras.Secmark = value;
        }
    }

    /// <summary>The 128 connlabel bits (bit i = label i).</summary>
    public UInt128 Labels
    {
        get => _extras?.Labels ?? UInt128.Zero;
        set
        {
            if (value != UInt128.Zero || _extras is not null) Extras.Labels = value;
        }
    }

    /// <summary>The helper the CT target assigned (no helper is modelled beyond its name).</summary>
    public string? Helper
    {
        get => _extras?.Helper;
        set
        {
            if (value is not null || _extras is not null) Extras.Helper = value;
        }
    }

    /// <summary>Event mask the CT target asked for (--ctevents); kept, no event is delivered.</summary>
    public uint EventMask
    {
        get => _extras?.EventMask ?? 0;
        set
        {
            if (value != 0 || _extras is not null) Extras.EventMask = value;
        }
    }

    /// <summary>The interface a MASQUERADE binding was made for (nf_conn_nat's masq_index); null without one.</summary>
    public string? MasqueradeDevice
    {
        get => _masqueradeDevice != 0 ? DeviceNames.Name(_masqueradeDevice) : _extras?.MasqueradeDevice;
        set
        {
            // Every masqueraded connection has one: kept as a number in the entry, not in the extras (more than 255
            // device names in the process: the extras).
            _masqueradeDevice = value is null ? (byte)0 : DeviceNames.Number(value);
            if (_masqueradeDevice == 0 && (value is not null || _extras is not null)) Extras.MasqueradeDevice = value;
            else if (_extras is not null) _extras.MasqueradeDevice = null;
        }
    }

    /// <summary>
    /// Whether the connection has no MASQUERADE device or has <paramref name="device"/> (<see cref="MasqueradeDevice"/>
    /// compared by name), given <paramref name="number"/>, the name's <see cref="DeviceNames"/> number when it had one
    /// (else 0): then the bytes are compared, without the name table or the extras.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal bool MasqueradeDeviceIsNoneOr(string device, byte number)
    {
        byte m = _masqueradeDevice;
        if (m != 0 && number != 0) return m == number;
        return MasqueradeDevice is not { } masq || ReferenceEquals(masq, device) || string.Equals(masq, device, StringComparison.Ordinal);
    }

    /// <summary>The next (older) entry with the same NAT source key in the table's by-source chain (newest first).</summary>
    internal ConnEntry? NextBySource
    {
        get => _nextBySource;
        set => _nextBySource = value;
    }

    /// <summary>Counters per direction, or null when accounting was off when the entry was made (in the extras: rare).</summary>
    public ConnCounter[]? Counters
    {
        get => _extras?.Counters;
        set
        {
            if (value is not null || _extras is not null) Extras.Counters = value;
        }
    }

    /// <summary>The TCP tracking state, inline (meaningful when <see cref="HasTcp"/>: TCP connections from tcp_new on).</summary>
    private TcpConnState _tcp;

    private bool _hasTcp;

    /// <summary>Whether the entry has TCP tracking state (a TCP connection tcp_new accepted, or one loaded with its state).</summary>
    public bool HasTcp => _hasTcp;

    /// <summary>The TCP tracking state itself, changed in place by the tracker (read it only when <see cref="HasTcp"/>).</summary>
    public ref TcpConnState Tcp => ref _tcp;

    /// <summary>The TCP conntrack state, or null for a connection without TCP state.</summary>
    public TcpCtState? TcpState => _hasTcp ? _tcp.State : null;

    /// <summary>Gives the entry its TCP state (tcp_new, or a saved table loaded).</summary>
    public void SetTcp(in TcpConnState state)
    {
        _tcp = state;
        _hasTcp = true;
    }

    /// <summary>Gives the entry a new TCP state, all zero, and returns it to be filled in place (tcp_new).</summary>
    internal ref TcpConnState StartTcp()
    {
        _tcp = default;
        _hasTcp = true;
        return ref _tcp;
    }

    /// <summary>UDP: until when a reply does not yet make the flow a stream (ct->proto.udp.stream_ts).</summary>
    public double UdpStreamAt { get; set; }

    /// <summary>The table holding the entry (null when in none), and its neighbours in the table's insertion order.</summary>
    internal ConntrackTable? Owner { get; set; }

    /// <summary>The next older entry in the table's insertion order; for a removed entry, the next one in the table's pool list.</summary>
    internal ConnEntry? Older { get; set; }

    internal ConnEntry? Newer { get; set; }

    /// <summary>The entry's number in its <see cref="Owner"/> (the table's entries by number, which its hash slots name); meaningless in none.</summary>
    internal int TableNumber;

    /// <summary>The flow path's memos for this connection's established packets (Engine.FlowPath.cs: input routes, table walks); not saved.</summary>
    internal Engine.FlowState? Flow;

    /// <summary>Which directions have had an established packet (bit 1 original, bit 2 reply): the flow path remembers from a direction's second one.</summary>
    internal byte FlowSeen;

    public bool IsConfirmed => (Status & ConnStatus.Confirmed) != 0;

    public bool Has(ConnStatus s) => (Status & s) != 0;

    /// <summary>Whole seconds left (nf_ct_expires / HZ), never negative.</summary>
    public long SecondsLeft(double now)
    {
        double left = Timeout - now;
        return left <= 0 ? 0 : (long)Math.Floor(left);
    }

    /// <summary>The zone id for <paramref name="dir"/> (nf_ct_zone_id): the zone where it applies, else the default zone 0.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public ushort ZoneFor(ConnDirection dir) => ZoneIdFor(Zone, ZoneDirections, dir);

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static ushort ZoneIdFor(ushort zone, byte directions, ConnDirection dir)
    {
        if (directions == 0) return zone;
        byte bit = dir == ConnDirection.Original ? (byte)1 : (byte)2;
        return (directions & bit) != 0 ? zone : (ushort)0;
    }

    /// <summary>
    /// A copy of the connection as it is now (not in any table): what an event reports when its line is written later.
    /// </summary>
    public ConnEntry Copy()
    {
        var c = (ConnEntry)MemberwiseClone();
        if (_v6 is { } v) c._v6 = new ConnAddresses6 { OriginalSource = v.OriginalSource, OriginalDestination = v.OriginalDestination, ReplySource = v.ReplySource, ReplyDestination = v.ReplyDestination };
        if (_extras is { } x)
        {
            c._extras = new ConnExtras { Secmark = x.Secmark, Labels = x.Labels, Helper = x.Helper, EventMask = x.EventMask, MasqueradeDevice = x.MasqueradeDevice, Counters = x.Counters?.ToArray() };
        }
        c._nextBySource = null;
        c.Owner = null;
        c.Older = c.Newer = null;
        return c;
    }

    /// <summary>
    /// Makes a removed entry (out of every table, its grace over: <see cref="ConntrackTable.NewEntry"/>) a new connection
    /// with these tuples: every field as <c>new ConnEntry(original, reply)</c> leaves it, so nothing of the connection it
    /// held before (status, timeout, marks, labels, helper, zone, TCP state, NAT links, flow memos, counters) survives.
    /// A field added to the class must be reset here too (ConntrackPoolTests checks every field by reflection).
    /// </summary>
    internal void Reuse(in ConnTuple original, in ConnTuple reply)
    {
        Clear();
        Original = original;
        Reply = reply;
    }

    /// <summary>
    /// <see cref="Reuse"/> for an IPv4 connection of a protocol with ports (TCP, UDP, UDP-Lite, SCTP, DCCP) given by its
    /// original tuple's fields: the reply is that tuple inverted (<see cref="ConnTuple.TryInvert"/>: addresses and ports
    /// swapped), written straight into the fields instead of two 64-byte tuples built, inverted and copied in.
    /// </summary>
    internal void ReuseV4(byte protocol, uint source, uint destination, ushort sourcePort, ushort destinationPort)
    {
        Clear();
        SetV4(protocol, source, destination, sourcePort, destinationPort);
    }

    /// <summary>A new entry as <see cref="ReuseV4"/> leaves a pooled one (what <c>new ConnEntry(tuple, inverse)</c> gives).</summary>
    internal ConnEntry(byte protocol, uint source, uint destination, ushort sourcePort, ushort destinationPort) =>
        SetV4(protocol, source, destination, sourcePort, destinationPort);

    private void SetV4(byte protocol, uint source, uint destination, ushort sourcePort, ushort destinationPort)
    {
        System.Diagnostics.Debug.Assert(ConnTuple.HasPortTuple(protocol), "the reply of a portless tuple is not its ports swapped");
        _family = _replyFamily = IpFamily.V4;
        _proto = _replyProto = protocol;
        _os = _rd = source;
        _od = _rs = destination;
        _osp = _rdp = sourcePort;
        _odp = _rsp = destinationPort;
    }

    /// <summary>Every field as a new entry has it, the tuples' included (all zero): <see cref="Reuse"/>'s first step.</summary>
    private void Clear()
    {
        _os = _od = _rs = _rd = 0;
        _v6 = null;
        _osp = _odp = _rsp = _rdp = 0;
        _family = _replyFamily = default;
        _proto = _replyProto = 0;
        _extras = null;
        _nextBySource = null;
        _masqueradeDevice = 0;
        Status = ConnStatus.None;
        Timeout = 0;
        Mark = 0;
        Zone = 0;
        ZoneDirections = 0;
        _tcp = default;
        _hasTcp = false;
        UdpStreamAt = 0;
        Owner = null;
        Older = Newer = null;
        TableNumber = 0;
        Flow = null;
        FlowSeen = 0;
    }

    /// <summary>Adds a packet to the direction's counters (nf_ct_acct_update), when accounting is on.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public void Account(ConnDirection dir, int bytes)
    {
        if (Counters is null) return;
        Counters[(int)dir].Packets++;
        Counters[(int)dir].Bytes += (ulong)bytes;
    }
}

/// <summary>
/// The template the raw table's CT target attaches (a conntrack template, IPS_TEMPLATE): zone, helper and
/// event mask for the connection the packet will create. NOTRACK / CT --notrack set no template but the
/// untracked state.
/// </summary>
public sealed class ConnTemplate
{
    public ushort Zone { get; init; }

    public byte ZoneDirections { get; init; }

    /// <summary>XT_CT_ZONE_MARK: the zone is taken from the packet's mark when conntrack runs.</summary>
    public bool ZoneFromMark { get; init; }

    public string? Helper { get; init; }

    public uint EventMask { get; init; }
}

/// <summary>
/// Interface names numbered once per process (1-255), so that a connection keeps its MASQUERADE device in one byte
/// instead of an extension object. Names are few (a host's links); past 255 a name gets 0 and the caller keeps the string.
/// </summary>
internal static class DeviceNames
{
    private static readonly System.Threading.Lock Gate = new();
    private static string[] _names = [string.Empty];
    private static Dictionary<string, byte> _numbers = new(StringComparer.Ordinal);

    public static string Name(byte number) => Volatile.Read(ref _names)[number];

    /// <summary>The number <paramref name="name"/> has, or 0 when it has none (nothing is registered).</summary>
    public static byte Known(string name) => Volatile.Read(ref _numbers).TryGetValue(name, out byte n) ? n : (byte)0;

    /// <summary>A name object and its number, one object (a reader never pairs one name with another's number).</summary>
    private sealed record Hit(string Name, byte Number);

    /// <summary>The last hit; and per number the hit made for it last (reused: no allocation while the name objects stay).</summary>
    private static Hit? _last;

    private static readonly Hit?[] Hits = new Hit?[256];

    public static byte Number(string name)
    {
        // MASQUERADE stores its device once per new connection, nearly always the same link's name object: a reference
        // compare instead of hashing the string.
        if (Volatile.Read(ref _last) is { } last && ReferenceEquals(last.Name, name)) return last.Number;
        if (Volatile.Read(ref _numbers).TryGetValue(name, out byte n))
        {
            Hit? hit = Volatile.Read(ref Hits[n]);
            if (hit is null || !ReferenceEquals(hit.Name, name)) Volatile.Write(ref Hits[n], hit = new Hit(name, n));
            Volatile.Write(ref _last, hit);
            return n;
        }
        lock (Gate)
        {
            if (_numbers.TryGetValue(name, out n)) return n;
            if (_names.Length > byte.MaxValue) return 0;
            n = (byte)_names.Length;
            // Copies published whole: readers never see a half-made table.
            Volatile.Write(ref _names, [.. _names, name]);
            Volatile.Write(ref _numbers, new Dictionary<string, byte>(_numbers, StringComparer.Ordinal) { [name] = n });
            return n;
        }
    }
}
