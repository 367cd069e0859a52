using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m udp</c> (struct xt_udp).</summary>
public sealed class UdpData : ExtensionData
{
    public ushort SportMin;
    public ushort SportMax = ushort.MaxValue;
    public ushort DportMin;
    public ushort DportMax = ushort.MaxValue;
    public bool InvSport;
    public bool InvDport;

    /// <summary>
    /// True when iptables-nft turns the match into native nf_tables payload compares (any port given);
    /// false when it goes to the kernel as the xt "udp" match (no option at all).
    /// </summary>
    public bool Native;

    public bool IsAllDefault => SportMin == 0 && SportMax == ushort.MaxValue && DportMin == 0 && DportMax == ushort.MaxValue && !InvSport && !InvDport;
}

/// <summary>
/// <c>-m udp</c>: <c>--sport</c>/<c>--dport</c> port or range (libxt_udp.c, xt_tcpudp.c). Loaded implicitly by
/// <c>-p udp</c>. iptables-nft translates it to payload expressions unless it has no option at all.
/// </summary>
public sealed class UdpMatch : XtExtension<UdpData>
{
    private const int Sport = 0, Dport = 1;

    public override string Name => "udp";

    public override ExtensionKind Kind => ExtensionKind.Match;

    /// <inheritdoc/>
    public override bool SharesEqualData => true;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("source-port", Sport, OptionArg.Required, OptFlags.Invert),
        new("sport", Sport, OptionArg.Required, OptFlags.Invert),
        new("destination-port", Dport, OptionArg.Required, OptFlags.Invert),
        new("dport", Dport, OptionArg.Required, OptFlags.Invert),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, UdpData d)
    {
        if (option.Id == Sport)
        {
            (d.SportMin, d.SportMax) = XtParse.PortRangeOption(argument!, Name, "source-port", ctx.Names);
            d.InvSport |= invert;
        }
        else
        {
            (d.DportMin, d.DportMax) = XtParse.PortRangeOption(argument!, Name, "destination-port", ctx.Names);
            d.InvDport |= invert;
        }
    }

    protected override void FinalCheck(ParseContext ctx, UdpData d)
    {
        d.Native = !d.IsAllDefault;
        if (!d.Native) return;
        // add_nft_udp: the payload compares need the rule's own protocol (an inverted -p udp passes).
        // add_nft_udp runs only when the rule is built (not for -L/-S with stray match options).
        if (ctx.BuildsRule && ctx.Protocol != Protocols.Udp) throw ctx.Error("UDP match requires '-p udp'");
    }

    /// <summary>A native match whose compares all vanished ("! --sport 0:65535") reads back as nothing.</summary>
    public override bool HiddenInListing(ExtensionData data)
    {
        var d = (UdpData)data;
        return d.Native && d.IsAllDefault;
    }

    protected override string? CheckEntry(RuleCheckContext ctx, UdpData d)
    {
        // Only the xt match reaches the kernel, and xt_tcpudp wants "-p udp" (not inverted).
        if (d.Native) return null;
        return ctx.Rule.Protocol == Protocols.Udp && !ctx.Rule.ProtocolInverted ? null : RulesetEditor.InvalidArgument;
    }

    protected override void Save(StringBuilder sb, UdpData d, IpFamily family)
    {
        XtParse.AppendPortsSaved(sb, "sport", d.SportMin, d.SportMax, d.InvSport);
        XtParse.AppendPortsSaved(sb, "dport", d.DportMin, d.DportMax, d.InvDport);
    }

    protected override void Print(StringBuilder sb, UdpData d, IpFamily family, bool numeric)
    {
        sb.Append(" udp");
        XtParse.AppendPortsListed(sb, "spt", d.SportMin, d.SportMax, d.InvSport, numeric, "udp");
        XtParse.AppendPortsListed(sb, "dpt", d.DportMin, d.DportMax, d.InvDport, numeric, "udp");
    }

    /// <summary>
    /// Evaluates the match. With a port given, iptables-nft 1.8.9 sends native payload compares: they read a
    /// non-first fragment's data as the header, and a packet too short for the port does not match, without a
    /// hot drop (nft_payload.c). With no option the xt "udp" match runs (xt_tcpudp.c): fragments do not match,
    /// a truncated header is dropped. Both recorded on Linux 6.18 with iptables 1.8.9 (nft).
    /// </summary>
    /// <summary>Ports: the same for a connection's packets.</summary>
    public override bool FlowStable(ExtensionData data) => true;

    protected override bool Match(PacketContext ctx, UdpData d)
    {
        Packet p = ctx.Packet;
        if (d.Native) return NativePorts.Match(p, d.SportMin, d.SportMax, d.InvSport, d.DportMin, d.DportMax, d.InvDport);
        if (HeaderReads.FragOff(p) != 0) return false;
        if (!HeaderReads.TryTransport(p, UdpHeader.Length, out ReadOnlySpan<byte> uh)) return HeaderReads.Drop(ctx);
        ushort sport = HeaderReads.U16(uh, 0), dport = HeaderReads.U16(uh, 2);
        return (sport >= d.SportMin && sport <= d.SportMax) != d.InvSport
            && (dport >= d.DportMin && dport <= d.DportMax) != d.InvDport;
    }
}
