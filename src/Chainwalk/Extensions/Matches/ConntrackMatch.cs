using Chainwalk.Conntrack;
using Chainwalk.Engine;
using System.Text;
using Chainwalk.Net;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Matches;

/// <summary>Which parts of <c>-m conntrack</c> are used (XT_CONNTRACK_* of xt_conntrack.h).</summary>
[Flags]
public enum ConntrackFlags : ushort
{
    None = 0,
    State = 1 << 0,
    Proto = 1 << 1,
    OrigSrc = 1 << 2,
    OrigDst = 1 << 3,
    ReplSrc = 1 << 4,
    ReplDst = 1 << 5,
    Status = 1 << 6,
    Expires = 1 << 7,
    OrigSrcPort = 1 << 8,
    OrigDstPort = 1 << 9,
    ReplSrcPort = 1 << 10,
    ReplDstPort = 1 << 11,
    Direction = 1 << 12,
    StateAlias = 1 << 13,
}

/// <summary>Connection states (XT_CONNTRACK_STATE_*): bit 0 INVALID, then 1 &lt;&lt; (ctinfo + 1) …</summary>
[Flags]
public enum CtState : uint
{
    None = 0,
    Invalid = 1 << 0,
    Established = 1 << 1,
    Related = 1 << 2,
    New = 1 << 3,
    Snat = 1 << 6,
    Dnat = 1 << 7,
    Untracked = 1 << 8,
}

/// <summary>Conntrack status bits (IPS_*) that the match can test.</summary>
[Flags]
public enum CtStatus : uint
{
    None = 0,
    Expected = 1 << 0,
    SeenReply = 1 << 1,
    Assured = 1 << 2,
    Confirmed = 1 << 3,
}

/// <summary>Options of <c>-m conntrack</c> revision 3 (struct xt_conntrack_mtinfo3); also the data of <c>-m state</c>.</summary>
public sealed class ConntrackData : ExtensionData
{
    public ConntrackFlags MatchFlags;

    /// <summary>Inverted parts; <see cref="ConntrackFlags.Direction"/> here means REPLY.</summary>
    public ConntrackFlags InvertFlags;

    public CtState States;
    public CtStatus Statuses;
    public byte L4Proto;
    public IpNet OrigSrc;
    public IpNet OrigDst;
    public IpNet ReplSrc;
    public IpNet ReplDst;
    public ushort OrigSrcPort, OrigSrcPortHigh;
    public ushort OrigDstPort, OrigDstPortHigh;
    public ushort ReplSrcPort, ReplSrcPortHigh;
    public ushort ReplDstPort, ReplDstPortHigh;
    public uint ExpiresMin, ExpiresMax;
}

/// <summary>
/// <c>-m conntrack</c> (libxt_conntrack.c, xt_conntrack.c): state, status, protocol, tuple addresses and
/// ports, remaining lifetime and direction. iptables-nft 1.8.9 uses revision 3.
/// </summary>
public sealed class ConntrackMatch : XtExtension<ConntrackData>
{
    internal const int OState = 0, OProto = 1, OOrigSrc = 2, OOrigDst = 3, OReplSrc = 4, OReplDst = 5,
        OOrigSrcPort = 6, OOrigDstPort = 7, OReplSrcPort = 8, OReplDstPort = 9, OStatus = 10, OExpire = 11, ODir = 12;

    public override string Name => "conntrack";

    /// <summary>The revision iptables 1.8.9 uses with this kernel.</summary>
    protected override void Init(ParseContext ctx, ConntrackData data) => data.Revision = 3;

    public override ExtensionKind Kind => ExtensionKind.Match;

    /// <inheritdoc/>
    public override bool SharesEqualData => true;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("ctstate", OState, OptionArg.Required, OptFlags.Invert),
        new("ctproto", OProto, OptionArg.Required, OptFlags.Invert),
        new("ctorigsrc", OOrigSrc, OptionArg.Required, OptFlags.Invert),
        new("ctorigdst", OOrigDst, OptionArg.Required, OptFlags.Invert),
        new("ctreplsrc", OReplSrc, OptionArg.Required, OptFlags.Invert),
        new("ctrepldst", OReplDst, OptionArg.Required, OptFlags.Invert),
        new("ctstatus", OStatus, OptionArg.Required, OptFlags.Invert),
        new("ctexpire", OExpire, OptionArg.Required, OptFlags.Invert),
        new("ctorigsrcport", OOrigSrcPort, OptionArg.Required, OptFlags.Invert),
        new("ctorigdstport", OOrigDstPort, OptionArg.Required, OptFlags.Invert),
        new("ctreplsrcport", OReplSrcPort, OptionArg.Required, OptFlags.Invert),
        new("ctrepldstport", OReplDstPort, OptionArg.Required, OptFlags.Invert),
        new("ctdir", ODir),
    ];

    internal static readonly (string Name, CtState Value)[] StateNames =
    [
        ("INVALID", CtState.Invalid), ("NEW", CtState.New), ("ESTABLISHED", CtState.Established), ("RELATED", CtState.Related),
        ("UNTRACKED", CtState.Untracked), ("SNAT", CtState.Snat), ("DNAT", CtState.Dnat),
    ];

    private static readonly (string Name, CtState Value)[] StatePrintOrder =
    [
        ("INVALID", CtState.Invalid), ("NEW", CtState.New), ("RELATED", CtState.Related), ("ESTABLISHED", CtState.Established),
        ("UNTRACKED", CtState.Untracked), ("SNAT", CtState.Snat), ("DNAT", CtState.Dnat),
    ];

    private static readonly (string Name, CtStatus Value)[] StatusNames =
    [
        ("NONE", CtStatus.None), ("EXPECTED", CtStatus.Expected), ("SEEN_REPLY", CtStatus.SeenReply), ("ASSURED", CtStatus.Assured),
        ("CONFIRMED", CtStatus.Confirmed),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, ConntrackData d)
    {
        string arg = argument!;
        ConntrackFlags flag = ConntrackFlags.None;
        switch (option.Id)
        {
            case OState:
                d.States |= ParseList(arg, StateNames, "ctstate");
                flag = ConntrackFlags.State;
                break;
            case OProto:
                d.L4Proto = (byte)Protocols.Parse(arg, ctx.Names);
                // 1.8.9 tests the status bit here (XT_INV_PROTO shares its value with XT_CONNTRACK_STATUS).
                if (d.L4Proto == 0 && (d.InvertFlags & ConntrackFlags.Status) != 0)
                    throw ctx.Error("conntrack: rule would never match protocol");
                flag = ConntrackFlags.Proto;
                break;
            case OOrigSrc:
                d.OrigSrc = XtParse.HostMask(arg, ctx.Family, ctx.Names, "conntrack", option.Name);
                flag = ConntrackFlags.OrigSrc;
                break;
            case OOrigDst:
                d.OrigDst = XtParse.HostMask(arg, ctx.Family, ctx.Names, "conntrack", option.Name);
                flag = ConntrackFlags.OrigDst;
                break;
            case OReplSrc:
                d.ReplSrc = XtParse.HostMask(arg, ctx.Family, ctx.Names, "conntrack", option.Name);
                flag = ConntrackFlags.ReplSrc;
                break;
            case OReplDst:
                d.ReplDst = XtParse.HostMask(arg, ctx.Family, ctx.Names, "conntrack", option.Name);
                flag = ConntrackFlags.ReplDst;
                break;
            case OStatus:
                d.Statuses |= ParseList(arg, StatusNames, "ctstatus");
                flag = ConntrackFlags.Status;
                break;
            case OExpire:
                {
                    var (min, max, _) = XtParse.UIntRange(arg, uint.MaxValue, "conntrack", option.Name);
                    d.ExpiresMin = (uint)min;
                    d.ExpiresMax = (uint)max;
                    flag = ConntrackFlags.Expires;
                    break;
                }
            case OOrigSrcPort:
                (d.OrigSrcPort, d.OrigSrcPortHigh) = XtParse.PortRangeRc(arg, ctx.Names, "conntrack", option.Name);
                flag = ConntrackFlags.OrigSrcPort;
                break;
            case OOrigDstPort:
                (d.OrigDstPort, d.OrigDstPortHigh) = XtParse.PortRangeRc(arg, ctx.Names, "conntrack", option.Name);
                flag = ConntrackFlags.OrigDstPort;
                break;
            case OReplSrcPort:
                (d.ReplSrcPort, d.ReplSrcPortHigh) = XtParse.PortRangeRc(arg, ctx.Names, "conntrack", option.Name);
                flag = ConntrackFlags.ReplSrcPort;
                break;
            case OReplDstPort:
                (d.ReplDstPort, d.ReplDstPortHigh) = XtParse.PortRangeRc(arg, ctx.Names, "conntrack", option.Name);
                flag = ConntrackFlags.ReplDstPort;
                break;
            case ODir:
                d.MatchFlags |= ConntrackFlags.Direction;
                if (string.Equals(arg, "ORIGINAL", StringComparison.OrdinalIgnoreCase)) d.InvertFlags &= ~ConntrackFlags.Direction;
                else if (string.Equals(arg, "REPLY", StringComparison.OrdinalIgnoreCase)) d.InvertFlags |= ConntrackFlags.Direction;
                else throw XtablesException.Param($"conntrack: Bad value for \"--ctdir\" option: \"{arg}\"");
                return;
        }
        d.MatchFlags |= flag;
        if (invert) d.InvertFlags |= flag;
    }

    /// <summary>A comma list of names (prefixes accepted); "Bad WHAT \"rest\"" at the first bad element.</summary>
    internal static T ParseList<T>(string arg, (string Name, T Value)[] table, string what) where T : struct, Enum
    {
        ulong mask = 0;
        int pos = 0;
        while (true)
        {
            int comma = arg.IndexOf(',', pos);
            ReadOnlySpan<char> word = comma < 0 ? arg.AsSpan(pos) : arg.AsSpan(pos, comma - pos);
            if (word.Length == 0 || !XtParse.TryPrefixName(word, table, out T v))
                throw XtablesException.Param($"Bad {what} \"{arg[pos..]}\"");
            mask |= Convert.ToUInt64(v, System.Globalization.CultureInfo.InvariantCulture);
            if (comma < 0) break;
            pos = comma + 1;
        }
        return (T)Enum.ToObject(typeof(T), mask);
    }

    protected override void FinalCheck(ParseContext ctx, ConntrackData d)
    {
        if (d.Given == 0) throw ctx.Error("conntrack: At least one option is required");
    }

    protected override void Save(StringBuilder sb, ConntrackData d, IpFamily family) => Dump(sb, d, "--", family, true);

    protected override void Print(StringBuilder sb, ConntrackData d, IpFamily family, bool numeric) => Dump(sb, d, string.Empty, family, numeric);

    public override string SaveName(ExtensionData data) =>
        (((ConntrackData)data).MatchFlags & ConntrackFlags.StateAlias) != 0 ? "state" : Name;

    /// <summary>
    /// State, direction, the tuples and the protocol are the same for every packet of a connection's direction (the state
    /// by ctinfo, which the walk memo compares; SNAT/DNAT status bits are set with the binding, before the connection is
    /// established); --ctstatus (ASSURED comes later) and --ctexpire are not.
    /// </summary>
    public override bool FlowStable(ExtensionData data) =>
        (((ConntrackData)data).MatchFlags & (ConntrackFlags.Status | ConntrackFlags.Expires)) == 0;

    protected override bool Match(PacketContext ctx, ConntrackData d) => Evaluate(ctx, d);

    /// <summary>conntrack_mt (xt_conntrack.c, revision 3; revisions 1 and 2 are converted to it): also the state match.</summary>
    internal static bool Evaluate(PacketContext ctx, ConntrackData d)
    {
        bool Inv(ConntrackFlags f) => (d.InvertFlags & f) != 0;
        bool Has(ConntrackFlags f) => (d.MatchFlags & f) != 0;
        bool tracked = ConntrackHooks.TryGet(ctx.Skb, out ConnEntry ct, out ConnDirection dir);
        CtState bit;
        if (tracked)
        {
            bit = ctx.Skb.CtInfo switch
            {
                CtInfo.Established or CtInfo.EstablishedReply => CtState.Established,
                CtInfo.Related or CtInfo.RelatedReply => CtState.Related,
                _ => CtState.New,
            };
        }
        else
        {
            bit = ctx.Skb.CtInfo == CtInfo.Untracked ? CtState.Untracked : CtState.Invalid;
        }
        if (Has(ConntrackFlags.State))
        {
            if (tracked && (d.MatchFlags & ConntrackFlags.StateAlias) == 0)
            {
                if (ct.Has(ConnStatus.SrcNat)) bit |= CtState.Snat;
                if (ct.Has(ConnStatus.DstNat)) bit |= CtState.Dnat;
            }
            if (((d.States & bit) != 0) == Inv(ConntrackFlags.State)) return false;
        }
        if (!tracked) return Has(ConntrackFlags.State);
        // Only the state asked (kube-proxy's RELATED,ESTABLISHED and INVALID rules): nothing of the entry to read.
        if ((d.MatchFlags & ~(ConntrackFlags.State | ConntrackFlags.StateAlias)) == 0) return true;
        if (Has(ConntrackFlags.Direction) && ((dir == ConnDirection.Original) == Inv(ConntrackFlags.Direction))) return false;
        ConnTuple o = ct.Original, r = ct.Reply;
        if (Has(ConntrackFlags.OrigSrc) && AddrEq(o.Source, d.OrigSrc) == Inv(ConntrackFlags.OrigSrc)) return false;
        if (Has(ConntrackFlags.OrigDst) && AddrEq(o.Destination, d.OrigDst) == Inv(ConntrackFlags.OrigDst)) return false;
        if (Has(ConntrackFlags.ReplSrc) && AddrEq(r.Source, d.ReplSrc) == Inv(ConntrackFlags.ReplSrc)) return false;
        if (Has(ConntrackFlags.ReplDst) && AddrEq(r.Destination, d.ReplDst) == Inv(ConntrackFlags.ReplDst)) return false;
        if (Has(ConntrackFlags.Proto) && (ct.Protocol == d.L4Proto) == Inv(ConntrackFlags.Proto)) return false;
        if (Has(ConntrackFlags.OrigSrcPort) && !Port(d.OrigSrcPort, d.OrigSrcPortHigh, o.SourcePort, Inv(ConntrackFlags.OrigSrcPort))) return false;
        if (Has(ConntrackFlags.OrigDstPort) && !Port(d.OrigDstPort, d.OrigDstPortHigh, o.DestinationPort, Inv(ConntrackFlags.OrigDstPort))) return false;
        if (Has(ConntrackFlags.ReplSrcPort) && !Port(d.ReplSrcPort, d.ReplSrcPortHigh, r.SourcePort, Inv(ConntrackFlags.ReplSrcPort))) return false;
        if (Has(ConntrackFlags.ReplDstPort) && !Port(d.ReplDstPort, d.ReplDstPortHigh, r.DestinationPort, Inv(ConntrackFlags.ReplDstPort))) return false;
        if (Has(ConntrackFlags.Status) && (((uint)d.Statuses & (uint)ct.Status) != 0) == Inv(ConntrackFlags.Status)) return false;
        if (Has(ConntrackFlags.Expires))
        {
            long left = ct.IsConfirmed ? ct.SecondsLeft(ctx.Now) : 0;
            if ((left >= d.ExpiresMin && left <= d.ExpiresMax) == Inv(ConntrackFlags.Expires)) return false;
        }
        return true;
    }

    /// <summary>conntrack_addrcmp: equal under the rule's mask (the rule's address need not be masked).</summary>
    private static bool AddrEq(UInt128 addr, IpNet net) => ((addr ^ net.Address) & net.Mask) == UInt128.Zero;

    private static bool Port(ushort min, ushort max, ushort port, bool invert) => (port >= min && port <= max) != invert;

    internal static void AppendStates(StringBuilder sb, CtState states)
    {
        char sep = ' ';
        foreach (var (name, v) in StatePrintOrder)
        {
            if ((states & v) == 0) continue;
            sb.Append(sep).Append(name);
            sep = ',';
        }
    }

    private static void AppendStatuses(StringBuilder sb, CtStatus s)
    {
        char sep = ' ';
        foreach (var (name, v) in StatusNames)
        {
            if (v == CtStatus.None || (s & v) == 0) continue;
            sb.Append(sep).Append(name);
            sep = ',';
        }
        if (s == CtStatus.None) sb.Append(sep).Append("NONE");
    }

    internal static void Dump(StringBuilder sb, ConntrackData d, string prefix, IpFamily family, bool numeric)
    {
        bool Has(ConntrackFlags f) => (d.MatchFlags & f) != 0;
        void Inv(ConntrackFlags f)
        {
            if ((d.InvertFlags & f) != 0) sb.Append(" !");
        }

        if (Has(ConntrackFlags.State))
        {
            Inv(ConntrackFlags.State);
            sb.Append(' ').Append(prefix).Append(Has(ConntrackFlags.StateAlias) ? "state" : "ctstate");
            AppendStates(sb, d.States);
        }
        if (Has(ConntrackFlags.Proto))
        {
            Inv(ConntrackFlags.Proto);
            sb.Append(' ').Append(prefix).Append("ctproto ").Append(XtParse.Dec(d.L4Proto));
        }
        Addr(ConntrackFlags.OrigSrc, "ctorigsrc", d.OrigSrc);
        Addr(ConntrackFlags.OrigDst, "ctorigdst", d.OrigDst);
        Addr(ConntrackFlags.ReplSrc, "ctreplsrc", d.ReplSrc);
        Addr(ConntrackFlags.ReplDst, "ctrepldst", d.ReplDst);
        Ports(ConntrackFlags.OrigSrcPort, "ctorigsrcport", d.OrigSrcPort, d.OrigSrcPortHigh);
        Ports(ConntrackFlags.OrigDstPort, "ctorigdstport", d.OrigDstPort, d.OrigDstPortHigh);
        Ports(ConntrackFlags.ReplSrcPort, "ctreplsrcport", d.ReplSrcPort, d.ReplSrcPortHigh);
        Ports(ConntrackFlags.ReplDstPort, "ctrepldstport", d.ReplDstPort, d.ReplDstPortHigh);
        if (Has(ConntrackFlags.Status))
        {
            Inv(ConntrackFlags.Status);
            sb.Append(' ').Append(prefix).Append("ctstatus");
            AppendStatuses(sb, d.Statuses);
        }
        if (Has(ConntrackFlags.Expires))
        {
            Inv(ConntrackFlags.Expires);
            sb.Append(' ').Append(prefix).Append("ctexpire ").Append(XtParse.Dec(d.ExpiresMin));
            if (d.ExpiresMax != d.ExpiresMin) sb.Append(':').Append(XtParse.Dec(d.ExpiresMax));
        }
        if (Has(ConntrackFlags.Direction))
        {
            sb.Append(' ').Append(prefix).Append("ctdir ").Append((d.InvertFlags & ConntrackFlags.Direction) != 0 ? "REPLY" : "ORIGINAL");
        }

        void Addr(ConntrackFlags f, string name, IpNet net)
        {
            if (!Has(f)) return;
            Inv(f);
            sb.Append(' ').Append(prefix).Append(name);
            if (!numeric && net.Address == UInt128.Zero)
            {
                sb.Append(" anywhere");
                return;
            }
            string a = numeric ? IpNet.FormatAddress(net.Address, family) : ListWriter.AddressToAnyName(net.Address, family, NameDb.Printing);
            sb.Append(' ').Append(a).Append(IpNet.MaskSuffixForList(net.Mask, family));
        }

        void Ports(ConntrackFlags f, string name, ushort lo, ushort hi)
        {
            if (!Has(f)) return;
            Inv(f);
            sb.Append(' ').Append(prefix).Append(name).Append(' ').Append(XtParse.Dec(lo));
            if (hi != 0 && hi != lo) sb.Append(':').Append(XtParse.Dec(hi));
        }
    }
}
