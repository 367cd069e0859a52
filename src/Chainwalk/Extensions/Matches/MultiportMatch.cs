using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Matches;

/// <summary>Which ports <c>-m multiport</c> looks at (XT_MULTIPORT_*).</summary>
public enum MultiportDirection : byte
{
    Source = 0,
    Destination = 1,
    Either = 2,
}

/// <summary>Options of <c>-m multiport</c> revision 1 (struct xt_multiport_v1).</summary>
public sealed class MultiportData : ExtensionData
{
    public const int MaxPorts = 15;

    public MultiportDirection Direction;

    /// <summary>Number of used entries of <see cref="Ports"/>; a range takes two.</summary>
    public int Count;

    public ushort[] Ports = new ushort[MaxPorts];

    /// <summary>PortFlags[i] set: Ports[i] and Ports[i+1] are a range.</summary>
    public bool[] RangeStart = new bool[MaxPorts];

    public bool Invert;

    /// <summary>The rule's protocol when the ports were parsed (service names are looked up for it).</summary>
    public ushort Protocol;

    public override ExtensionData Clone()
    {
        var c = (MultiportData)MemberwiseClone();
        c.Ports = (ushort[])Ports.Clone();
        c.RangeStart = (bool[])RangeStart.Clone();
        return c;
    }
}

/// <summary>
/// <c>-m multiport</c> (libxt_multiport.c revision 1, xt_multiport.c): up to 15 ports, a:b ranges counting as
/// two; needs <c>-p</c> tcp, udp, udplite, sctp or dccp before its options.
/// </summary>
public sealed class MultiportMatch : XtExtension<MultiportData>
{
    private const int Sports = 0, Dports = 1, Ports = 2;

    public override string Name => "multiport";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("source-ports", Sports, OptionArg.Required, OptFlags.Invert) { Excludes = 0b110 },
        new("sports", Sports, OptionArg.Required, OptFlags.Invert) { Excludes = 0b110 },
        new("destination-ports", Dports, OptionArg.Required, OptFlags.Invert) { Excludes = 0b101 },
        new("dports", Dports, OptionArg.Required, OptFlags.Invert) { Excludes = 0b101 },
        new("ports", Ports, OptionArg.Required, OptFlags.Invert) { Excludes = 0b011 },
    ];

    /// <summary>The protocol names multiport knows (its own proto_to_name).</summary>
    internal static string? ProtoName(ushort proto) => proto switch
    {
        Protocols.Tcp => "tcp",
        Protocols.Udp => "udp",
        Protocols.UdpLite => "udplite",
        Protocols.Sctp => "sctp",
        Protocols.Dccp => "dccp",
        _ => null,
    };

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, MultiportData d)
    {
        if (ctx.ProtocolInverted) throw ctx.Error("multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP");
        string? proto = ProtoName(ctx.Protocol);
        if (proto is null)
        {
            throw ctx.Error(ctx.Protocol == 0
                ? "multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' or `-p dccp'"
                : "multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP");
        }
        ParsePorts(argument!, proto, ctx.Names, d);
        d.Protocol = ctx.Protocol;
        d.Direction = option.Id switch
        {
            Sports => MultiportDirection.Source,
            Dports => MultiportDirection.Destination,
            _ => MultiportDirection.Either,
        };
        if (invert) d.Invert = true;
    }

    private static void ParsePorts(string text, string proto, NameDb names, MultiportData d)
    {
        Array.Clear(d.RangeStart);
        string[] items = text.Split(',');
        int i = 0, item = 0;
        for (; item < items.Length && i < MultiportData.MaxPorts; item++, i++)
        {
            string cp = items[item];
            int colon = cp.IndexOf(':', StringComparison.Ordinal);
            string? range = null;
            if (colon >= 0)
            {
                if (i == MultiportData.MaxPorts - 1) throw XtablesException.Param("too many ports specified");
                range = cp[(colon + 1)..];
                cp = cp[..colon];
            }
            d.Ports[i] = XtParse.Port(cp, proto, names);
            if (range is not null)
            {
                d.RangeStart[i] = true;
                d.Ports[++i] = XtParse.Port(range, proto, names);
                if (d.Ports[i - 1] >= d.Ports[i]) throw XtablesException.Param("invalid portrange specified");
            }
        }
        d.Count = i;
        if (item < items.Length) throw XtablesException.Param("too many ports specified");
    }

    protected override void FinalCheck(ParseContext ctx, MultiportData d)
    {
        if (d.Given == 0) throw ctx.Error("multiport expection an option");
    }

    protected override string? CheckEntry(RuleCheckContext ctx, MultiportData d)
    {
        Rule r = ctx.Rule;
        bool ok = ProtoName(r.Protocol) is not null && !r.ProtocolInverted && d.Count <= MultiportData.MaxPorts;
        return ok ? null : RulesetEditor.InvalidArgument;
    }

    private static string DirectionName(MultiportDirection dir) => dir switch
    {
        MultiportDirection.Source => "sports",
        MultiportDirection.Destination => "dports",
        _ => "ports",
    };

    private static void AppendPorts(StringBuilder sb, MultiportData d, bool numeric, string? proto)
    {
        for (int i = 0; i < d.Count; i++)
        {
            if (i > 0) sb.Append(',');
            sb.Append(XtParse.ServiceText(d.Ports[i], numeric, proto));
            if (d.RangeStart[i])
            {
                sb.Append(':').Append(XtParse.ServiceText(d.Ports[++i], numeric, proto));
            }
        }
    }

    protected override void Save(StringBuilder sb, MultiportData d, IpFamily family)
    {
        if (d.Invert) sb.Append(" !");
        sb.Append(" --").Append(DirectionName(d.Direction)).Append(' ');
        AppendPorts(sb, d, true, null);
    }

    protected override void Print(StringBuilder sb, MultiportData d, IpFamily family, bool numeric)
    {
        sb.Append(" multiport ").Append(DirectionName(d.Direction)).Append(' ');
        if (d.Invert) sb.Append(" !");
        AppendPorts(sb, d, numeric, ProtoName(d.Protocol));
    }

    /// <summary>
    /// Evaluates the match (xt_multiport.c; revision 0 is revision 1 without ranges or inversion): the first
    /// listed port or range that fits decides; non-first fragments never match; fewer than 4 bytes of ports
    /// drop the packet.
    /// </summary>
    /// <summary>Ports: the same for a connection's packets (the kernel requires a protocol with ports).</summary>
    public override bool FlowStable(ExtensionData data) => true;

    protected override bool Match(PacketContext ctx, MultiportData d)
    {
        Packet p = ctx.Packet;
        if (HeaderReads.FragOff(p) != 0) return false;
        if (!HeaderReads.TryTransport(p, 4, out ReadOnlySpan<byte> pp)) return HeaderReads.Drop(ctx);
        ushort src = HeaderReads.U16(pp, 0), dst = HeaderReads.U16(pp, 2);
        for (int i = 0; i < d.Count; i++)
        {
            ushort lo = d.Ports[i], hi = lo;
            if (d.RangeStart[i] && i + 1 < d.Count) hi = d.Ports[++i];
            bool s = src >= lo && src <= hi, t = dst >= lo && dst <= hi;
            bool hit = d.Direction switch
            {
                MultiportDirection.Source => s,
                MultiportDirection.Destination => t,
                _ => s || t,
            };
            if (hit) return !d.Invert;
        }
        return d.Invert;
    }
}
