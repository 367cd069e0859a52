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
public sealed class ConnEntry
{
    public ConnEntry(ConnTuple original, ConnTuple reply)
    {
        Original = original;
        Reply = reply;
    }

    public ConnTuple Original { get; set; }

    /// <summary>The tuple replies carry (the inverse of <see cref="Original"/> until NAT changes it).</summary>
    public ConnTuple Reply { get; set; }

    public ConnTuple Tuple(ConnDirection dir) => dir == ConnDirection.Original ? Original : Reply;

    public IpFamily Family => Original.Family;

    public byte Protocol => Original.Protocol;

    public ConnStatus Status { get; set; }

    /// <summary>When the entry expires, in seconds on the host clock.</summary>
    public double Timeout { get; set; }

    /// <summary>ct->mark (CONNMARK, -m connmark).</summary>
    public uint Mark { get; set; }

    /// <summary>ct->secmark (CONNSECMARK).</summary>
    public uint Secmark { get; set; }

    /// <summary>The 128 connlabel bits (bit i = label i).</summary>
    public UInt128 Labels { get; set; }

    /// <summary>The conntrack zone (CT --zone); 0 is the default zone.</summary>
    public ushort Zone { get; set; }

    /// <summary>Which directions <see cref="Zone"/> applies to (XT_CT_ZONE_DIR_ORIG | _REPL; 0 = both).</summary>
    public byte ZoneDirections { get; set; }

    /// <summary>The helper the CT target assigned (no helper is modelled beyond its name).</summary>
    public string? Helper { get; set; }

    /// <summary>Event mask the CT target asked for (--ctevents); kept, no event is delivered.</summary>
    public uint EventMask { get; set; }

    /// <summary>Counters per direction, or null when accounting was off when the entry was made.</summary>
    public ConnCounter[]? Counters { get; set; }

    /// <summary>TCP tracking state (null for other protocols).</summary>
    public TcpConnState? Tcp { get; set; }

    /// <summary>UDP: until when a reply does not yet make the flow a stream (ct->proto.udp.stream_ts).</summary>
    public double UdpStreamAt { get; set; }

    /// <summary>The interface a MASQUERADE binding was made for (nf_conn_nat's masq_index); null without one.</summary>
    public string? MasqueradeDevice { get; set; }

    /// <summary>The entry's place in its table's list (null when not in a table).</summary>
    internal LinkedListNode<ConnEntry>? Node { get; set; }

    public bool IsConfirmed => (Status & ConnStatus.Confirmed) != 0;

    public bool Has(ConnStatus s) => (Status & s) != 0;

    /// <summary>Whole seconds left (nf_ct_expires / HZ), never negative.</summary>
    public long SecondsLeft(double now)
    {
        double left = Timeout - now;
        return left <= 0 ? 0 : (long)Math.Floor(left);
    }

    /// <summary>The zone id for <paramref name="dir"/> (nf_ct_zone_id): the zone where it applies, else the default zone 0.</summary>
    public ushort ZoneFor(ConnDirection dir) => ZoneIdFor(Zone, ZoneDirections, dir);

    public static ushort ZoneIdFor(ushort zone, byte directions, ConnDirection dir)
    {
        if (directions == 0) return zone;
        byte bit = dir == ConnDirection.Original ? (byte)1 : (byte)2;
        return (directions & bit) != 0 ? zone : (ushort)0;
    }

    /// <summary>Adds a packet to the direction's counters (nf_ct_acct_update), when accounting is on.</summary>
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
