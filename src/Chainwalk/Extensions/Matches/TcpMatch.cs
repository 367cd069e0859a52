using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m tcp</c> (struct xt_tcp).</summary>
public sealed class TcpData : ExtensionData
{
    public ushort SportMin;
    public ushort SportMax = ushort.MaxValue;
    public ushort DportMin;
    public ushort DportMax = ushort.MaxValue;
    public byte Option;
    public byte FlagMask;
    public byte FlagCompare;
    public bool InvSport;
    public bool InvDport;
    public bool InvOption;
    public bool InvFlags;

    /// <summary>
    /// True when iptables-nft turns the match into native nf_tables expressions (ports and flags only);
    /// false when it goes to the kernel as the xt "tcp" match (no option, or --tcp-option).
    /// </summary>
    public bool Native;

    public bool IsAllDefault => SportMin == 0 && SportMax == ushort.MaxValue && DportMin == 0 && DportMax == ushort.MaxValue
        && Option == 0 && FlagMask == 0 && FlagCompare == 0 && !InvSport && !InvDport && !InvOption && !InvFlags;
}

/// <summary>
/// <c>-m tcp</c>: ports, <c>--tcp-flags MASK COMP</c>, <c>--syn</c>, <c>--tcp-option</c> (libxt_tcp.c, xt_tcpudp.c).
/// Loaded implicitly by <c>-p tcp</c> when one of its options follows.
/// </summary>
public sealed class TcpMatch : XtExtension<TcpData>
{
    private const int Sport = 0, Dport = 1, Syn = 2, Flags = 3, Opt = 4;

    public override string Name => "tcp";

    public override ExtensionKind Kind => ExtensionKind.Match;

    /// <inheritdoc/>
    public override bool SharesEqualData => true;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("source-port", Sport, OptionArg.Required, OptFlags.Manual),
        new("sport", Sport, OptionArg.Required, OptFlags.Manual),
        new("destination-port", Dport, OptionArg.Required, OptFlags.Manual),
        new("dport", Dport, OptionArg.Required, OptFlags.Manual),
        new("syn", Syn, OptionArg.None, OptFlags.Manual),
        new("tcp-flags", Flags, OptionArg.Required, OptFlags.Manual),
        new("tcp-option", Opt, OptionArg.Required, OptFlags.Manual),
    ];

    internal static readonly (string Name, byte Flag)[] FlagNames =
        [("FIN", 0x01), ("SYN", 0x02), ("RST", 0x04), ("PSH", 0x08), ("ACK", 0x10), ("URG", 0x20), ("ALL", 0x3F), ("NONE", 0)];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, TcpData d)
    {
        ulong bit = 1UL << (option.Id == Syn ? Flags : option.Id);
        switch (option.Id)
        {
            case Sport:
                if ((d.Given & bit) != 0) throw ctx.Error("Only one `--source-port' allowed");
                (d.SportMin, d.SportMax) = XtParse.PortRange(argument!, "tcp", ctx.Names);
                d.InvSport = invert;
                break;
            case Dport:
                if ((d.Given & bit) != 0) throw ctx.Error("Only one `--destination-port' allowed");
                (d.DportMin, d.DportMax) = XtParse.PortRange(argument!, "tcp", ctx.Names);
                d.InvDport = invert;
                break;
            case Syn:
                if ((d.Given & bit) != 0) throw ctx.Error("Only one of `--syn' or `--tcp-flags'  allowed");
                d.FlagMask = 0x17;
                d.FlagCompare = 0x02;
                d.InvFlags = invert;
                d.Given |= bit;
                break;
            case Flags:
                {
                    if ((d.Given & bit) != 0) throw ctx.Error("Only one of `--syn' or `--tcp-flags'  allowed");
                    string? cmp = ctx.PeekArgument();
                    if (cmp is null || cmp.StartsWith('-') || cmp.StartsWith('!')) throw ctx.Error("--tcp-flags requires two args.");
                    d.FlagMask = ParseFlags(argument!);
                    d.FlagCompare = ParseFlags(cmp);
                    ctx.SkipArgument();
                    d.InvFlags = invert;
                    break;
                }
            case Opt:
                if ((d.Given & bit) != 0) throw ctx.Error("Only one `--tcp-option' allowed");
                if (!XtParse.TryUInt(argument!, 1, 255, out ulong o)) throw ctx.Error($"Bad TCP option \"{argument}\"");
                d.Option = (byte)o;
                d.InvOption = invert;
                break;
        }
    }

    internal static byte ParseFlags(string text)
    {
        byte ret = 0;
        foreach (string part in text.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            int i = Array.FindIndex(FlagNames, f => string.Equals(f.Name, part, StringComparison.OrdinalIgnoreCase));
            if (i < 0) throw XtablesException.Param($"Unknown TCP flag `{part}'");
            ret |= FlagNames[i].Flag;
        }
        return ret;
    }

    internal static void AppendFlags(StringBuilder sb, byte flags)
    {
        bool have = false;
        while (flags != 0)
        {
            int i = 0;
            while ((flags & FlagNames[i].Flag) == 0) i++;
            if (have) sb.Append(',');
            sb.Append(FlagNames[i].Name);
            have = true;
            flags &= (byte)~FlagNames[i].Flag;
        }
        if (!have) sb.Append("NONE");
    }

    protected override void FinalCheck(ParseContext ctx, TcpData d)
    {
        // add_nft_tcp: anything but --tcp-option (or nothing at all) becomes payload compares, which need
        // the rule's own protocol to be tcp (an inverted -p tcp passes).
        d.Native = !d.InvOption && d.Option == 0 && !d.IsAllDefault;
        if (!d.Native) return;
        // add_nft_tcp runs only when the rule is built (not for -L/-S with stray match options).
        if (ctx.BuildsRule && ctx.Protocol != Protocols.Tcp) throw ctx.Error("TCP match requires '-p tcp'");
    }

    /// <summary>iptables-nft 1.8.9 turns "! --sport 0:65535" into nothing it can read back.</summary>
    public override bool HiddenInListing(ExtensionData data)
    {
        var d = (TcpData)data;
        return d.Native && d.IsAllDefault;
    }

    protected override string? CheckEntry(RuleCheckContext ctx, TcpData d)
    {
        // Only the xt match reaches the kernel, and xt_tcpudp wants "-p tcp" (not inverted).
        if (d.Native) return null;
        return ctx.Rule.Protocol == Protocols.Tcp && !ctx.Rule.ProtocolInverted ? null : RulesetEditor.InvalidArgument;
    }

    protected override void Save(StringBuilder sb, TcpData d, IpFamily family)
    {
        PortSave(sb, "sport", d.SportMin, d.SportMax, d.InvSport);
        PortSave(sb, "dport", d.DportMin, d.DportMax, d.InvDport);
        if (d.Option != 0 || d.InvOption)
        {
            if (d.InvOption) sb.Append(" !");
            sb.Append(" --tcp-option ").Append(d.Option);
        }
        if (d.FlagMask != 0 || d.InvFlags)
        {
            if (d.InvFlags) sb.Append(" !");
            sb.Append(" --tcp-flags ");
            AppendFlags(sb, d.FlagMask);
            sb.Append(' ');
            AppendFlags(sb, d.FlagCompare);
        }
    }

    internal static void PortSave(StringBuilder sb, string name, ushort min, ushort max, bool inv)
    {
        if (min == 0 && max == ushort.MaxValue) return;
        if (inv) sb.Append(" !");
        sb.Append(" --").Append(name).Append(' ').Append(min);
        if (min != max) sb.Append(':').Append(max);
    }

    internal static void PortPrint(StringBuilder sb, string label, ushort min, ushort max, bool inv, bool numeric, string proto, NameDb names)
    {
        if (min == 0 && max == ushort.MaxValue && !inv) return;
        sb.Append(' ').Append(label);
        string i = inv ? "!" : string.Empty;
        if (min == max)
        {
            sb.Append(':').Append(i).Append(PortName(min, numeric, proto, names));
        }
        else
        {
            sb.Append("s:").Append(i).Append(PortName(min, numeric, proto, names)).Append(':').Append(PortName(max, numeric, proto, names));
        }
    }

    internal static string PortName(ushort port, bool numeric, string proto, NameDb names) =>
        numeric ? XtParse.Dec(port) : names.ServiceName(port, proto) ?? XtParse.Dec(port);

    protected override void Print(StringBuilder sb, TcpData d, IpFamily family, bool numeric)
    {
        NameDb names = NameDb.Printing;
        sb.Append(" tcp");
        PortPrint(sb, "spt", d.SportMin, d.SportMax, d.InvSport, numeric, "tcp", names);
        PortPrint(sb, "dpt", d.DportMin, d.DportMax, d.InvDport, numeric, "tcp", names);
        if (d.Option != 0 || d.InvOption) sb.Append(" option=").Append(d.InvOption ? "!" : string.Empty).Append(d.Option);
        if (d.FlagMask != 0 || d.InvFlags)
        {
            sb.Append(" flags:").Append(d.InvFlags ? "!" : string.Empty);
            if (numeric)
            {
                sb.Append("0x").Append(d.FlagMask.ToString("X2", System.Globalization.CultureInfo.InvariantCulture))
                  .Append("/0x").Append(d.FlagCompare.ToString("X2", System.Globalization.CultureInfo.InvariantCulture));
            }
            else
            {
                AppendFlags(sb, d.FlagMask);
                sb.Append('/');
                AppendFlags(sb, d.FlagCompare);
            }
        }
    }

    /// <summary>
    /// Evaluates the match. iptables-nft 1.8.9 sends ports and flags as native payload expressions
    /// (<see cref="TcpData.Native"/>): each reads its bytes at the transport header, also in a non-first
    /// fragment (whose data is then read as if it were the header), and when the packet is too short for them
    /// the rule simply does not match (nft_payload.c: NFT_BREAK), with no hot drop. Otherwise the kernel's xt
    /// "tcp" match runs (xt_tcpudp.c): fragments do not match, one at offset 1 and a truncated header drop the
    /// packet. Both recorded on Linux 6.18 with iptables 1.8.9 (nft).
    /// </summary>
    /// <summary>
    /// Ports only: the same for a connection's packets (an established one is never a later fragment nor cut short:
    /// conntrack makes those INVALID). Flags (--syn) and --tcp-option differ from packet to packet.
    /// </summary>
    public override bool FlowStable(ExtensionData data) =>
        data is TcpData { FlagMask: 0, FlagCompare: 0, InvFlags: false, Option: 0, InvOption: false };

    protected override bool Match(PacketContext ctx, TcpData d)
    {
        Packet p = ctx.Packet;
        int fragoff = HeaderReads.FragOff(p);
        if (d.Native) return MatchNative(p, d);
        if (fragoff != 0)
        {
            // "Don't allow a fragment of TCP 8 bytes in": offset 1 could overwrite the flags of the first fragment.
            if (fragoff == 1) ctx.HotDrop = true;
            return false;
        }
        if (!HeaderReads.TryTransport(p, TcpHeader.MinLength, out ReadOnlySpan<byte> th)) return HeaderReads.Drop(ctx);
        ushort sport = HeaderReads.U16(th, 0), dport = HeaderReads.U16(th, 2);
        if ((sport >= d.SportMin && sport <= d.SportMax) == d.InvSport) return false;
        if ((dport >= d.DportMin && dport <= d.DportMax) == d.InvDport) return false;
        if (((th[13] & d.FlagMask) == d.FlagCompare) == d.InvFlags) return false;
        if (d.Option != 0)
        {
            int doff = (th[12] >> 4) * 4;
            if (doff < TcpHeader.MinLength) return HeaderReads.Drop(ctx);
            int optlen = doff - TcpHeader.MinLength;
            if (optlen == 0) return d.InvOption;
            if (!HeaderReads.TryRead(p, HeaderReads.ThOff(p) + TcpHeader.MinLength, optlen, out ReadOnlySpan<byte> opts))
                return HeaderReads.Drop(ctx);
            return HeaderReads.HasOption(opts, d.Option) != d.InvOption;
        }
        return true;
    }

    /// <summary>The nf_tables expressions iptables-nft 1.8.9 emits for ports and flags (nft.c add_nft_tcp/add_nft_tcpudp).</summary>
    private static bool MatchNative(Packet p, TcpData d)
    {
        if (d.FlagMask != 0)
        {
            if (!HeaderReads.TryTransport(p, 14, out ReadOnlySpan<byte> f)) return false;
            if (((f[13] & d.FlagMask) == d.FlagCompare) == d.InvFlags) return false;
        }
        return NativePorts.Match(p, d.SportMin, d.SportMax, d.InvSport, d.DportMin, d.DportMax, d.InvDport);
    }
}
