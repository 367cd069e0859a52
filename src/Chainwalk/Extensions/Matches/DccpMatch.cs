using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m dccp</c> (struct xt_dccp_info).</summary>
public sealed class DccpData : ExtensionData
{
    public const byte SrcPorts = 0x01, DestPorts = 0x02, Types = 0x04, OptionFlag = 0x08;

    public ushort SportMin;
    public ushort SportMax;
    public ushort DportMin;
    public ushort DportMax;

    /// <summary>Which parts are used (XT_DCCP_*) and which of them are inverted.</summary>
    public byte Flags;
    public byte InvFlags;

    /// <summary>Bit i = DCCP packet type i; INVALID (10) also sets 11-15.</summary>
    public ushort TypeMask;

    public byte Option;
}

/// <summary><c>-m dccp</c> (libxt_dccp.c, xt_dccp.c): ports, packet types, an option number; needs <c>-p dccp</c>.</summary>
public sealed class DccpMatch : XtExtension<DccpData>
{
    private const int Sport = 0, Dport = 1, TypesOpt = 2, Opt = 3;

    public override string Name => "dccp";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override ushort RequiredProtocol => Protocols.Dccp;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("source-port", Sport, OptionArg.Required, OptFlags.Invert),
        new("sport", Sport, OptionArg.Required, OptFlags.Invert),
        new("destination-port", Dport, OptionArg.Required, OptFlags.Invert),
        new("dport", Dport, OptionArg.Required, OptFlags.Invert),
        new("dccp-types", TypesOpt, OptionArg.Required, OptFlags.Invert),
        new("dccp-option", Opt, OptionArg.Required, OptFlags.Invert),
    ];

    private static readonly string[] TypeNames =
        ["REQUEST", "RESPONSE", "DATA", "ACK", "DATAACK", "CLOSEREQ", "CLOSE", "RESET", "SYNC", "SYNCACK", "INVALID"];

    private const int Invalid = 10;

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, DccpData d)
    {
        byte flag;
        switch (option.Id)
        {
            case Sport:
                (d.SportMin, d.SportMax) = XtParse.PortRangeOption(argument!, Name, "source-port", ctx.Names);
                flag = DccpData.SrcPorts;
                break;
            case Dport:
                (d.DportMin, d.DportMax) = XtParse.PortRangeOption(argument!, Name, "destination-port", ctx.Names);
                flag = DccpData.DestPorts;
                break;
            case TypesOpt:
                d.TypeMask = ParseTypes(argument!);
                flag = DccpData.Types;
                break;
            default:
                d.Option = (byte)XtParse.UIntOption(argument!, 1, 255, Name, "dccp-option");
                flag = DccpData.OptionFlag;
                break;
        }
        d.Flags |= flag;
        if (invert) d.InvFlags |= flag;
    }

    private static ushort ParseTypes(string text)
    {
        ushort mask = 0;
        foreach (string part in text.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            int i = Array.FindIndex(TypeNames, n => string.Equals(n, part, StringComparison.OrdinalIgnoreCase));
            if (i < 0) throw XtablesException.Param($"Unknown DCCP type `{part}'");
            mask |= (ushort)(1 << i);
        }
        if ((mask & (1 << Invalid)) != 0) mask |= 0xF800;
        return mask;
    }

    private static void AppendTypes(StringBuilder sb, ushort types, bool inverted, bool numeric)
    {
        if (inverted) sb.Append(" !");
        sb.Append(' ');
        bool have = false;
        while (types != 0)
        {
            int i = 0;
            while ((types & (1 << i)) == 0) i++;
            if (have) sb.Append(',');
            have = true;
            if (numeric)
            {
                sb.Append(XtParse.Dec((ulong)i));
            }
            else
            {
                sb.Append(i < TypeNames.Length ? TypeNames[i] : "(null)");
                if (i == Invalid) break;
            }
            types &= (ushort)~(1 << i);
        }
    }

    private static void SavePorts(StringBuilder sb, string name, ushort min, ushort max, bool inv)
    {
        if (inv) sb.Append(" !");
        sb.Append(" --").Append(name).Append(' ').Append(XtParse.Dec(min));
        if (min != max) sb.Append(':').Append(XtParse.Dec(max));
    }

    protected override void Save(StringBuilder sb, DccpData d, IpFamily family)
    {
        if ((d.Flags & DccpData.SrcPorts) != 0) SavePorts(sb, "sport", d.SportMin, d.SportMax, (d.InvFlags & DccpData.SrcPorts) != 0);
        if ((d.Flags & DccpData.DestPorts) != 0) SavePorts(sb, "dport", d.DportMin, d.DportMax, (d.InvFlags & DccpData.DestPorts) != 0);
        if ((d.Flags & DccpData.Types) != 0)
        {
            sb.Append((d.InvFlags & DccpData.Types) != 0 ? " !" : string.Empty).Append(" --dccp-types");
            AppendTypes(sb, d.TypeMask, false, false);
        }
        if ((d.Flags & DccpData.OptionFlag) != 0)
        {
            sb.Append((d.InvFlags & DccpData.OptionFlag) != 0 ? " !" : string.Empty).Append(" --dccp-option ").Append(XtParse.Dec(d.Option));
        }
    }

    protected override void Print(StringBuilder sb, DccpData d, IpFamily family, bool numeric)
    {
        sb.Append(" dccp");
        if ((d.Flags & DccpData.SrcPorts) != 0)
            XtParse.AppendPortsListed(sb, "spt", d.SportMin, d.SportMax, (d.InvFlags & DccpData.SrcPorts) != 0, numeric, "dccp");
        if ((d.Flags & DccpData.DestPorts) != 0)
            XtParse.AppendPortsListed(sb, "dpt", d.DportMin, d.DportMax, (d.InvFlags & DccpData.DestPorts) != 0, numeric, "dccp");
        if ((d.Flags & DccpData.Types) != 0) AppendTypes(sb, d.TypeMask, (d.InvFlags & DccpData.Types) != 0, numeric);
        if ((d.Flags & DccpData.OptionFlag) != 0)
        {
            bool inv = (d.InvFlags & DccpData.OptionFlag) != 0;
            if (d.Option != 0 || inv) sb.Append(" option=").Append(inv ? "!" : string.Empty).Append(XtParse.Dec(d.Option));
        }
    }

    /// <summary>
    /// Evaluates the match (xt_dccp.c): non-first fragments never match; fewer than 12 bytes of DCCP header,
    /// a data offset shorter than the type's fixed header, or options past the packet drop it.
    /// </summary>
    protected override bool Match(PacketContext ctx, DccpData d)
    {
        Packet p = ctx.Packet;
        if (HeaderReads.FragOff(p) != 0) return false;
        if (!HeaderReads.TryTransport(p, 12, out ReadOnlySpan<byte> dh)) return HeaderReads.Drop(ctx);
        ushort sport = HeaderReads.U16(dh, 0), dport = HeaderReads.U16(dh, 2);
        int type = (dh[8] >> 1) & 0x0f;
        if (!Check(d, DccpData.SrcPorts, sport >= d.SportMin && sport <= d.SportMax)) return false;
        if (!Check(d, DccpData.DestPorts, dport >= d.DportMin && dport <= d.DportMax)) return false;
        if (!Check(d, DccpData.Types, (d.TypeMask & (1 << type)) != 0)) return false;
        if ((d.Flags & DccpData.OptionFlag) == 0) return true;
        bool found = FindOption(ctx, p, dh, type, d.Option);
        if (ctx.HotDrop) return false;
        return found != ((d.InvFlags & DccpData.OptionFlag) != 0);
    }

    private static bool Check(DccpData d, byte option, bool condition) =>
        (d.Flags & option) == 0 || condition != ((d.InvFlags & option) != 0);

    /// <summary>dccp_packet_hdr_len (include/linux/dccp.h): the type's fixed part after the generic header.</summary>
    private static int TypeHeaderLength(int type) => type switch
    {
        2 => 0, // DATA
        3 or 4 or 5 or 6 or 8 or 9 => 8, // ACK, DATAACK, CLOSEREQ, CLOSE, SYNC, SYNCACK: ack number
        0 => 4, // REQUEST: service code
        _ => 12, // RESPONSE, RESET and the rest
    };

    private static bool FindOption(PacketContext ctx, Packet p, ReadOnlySpan<byte> dh, int type, byte option)
    {
        int basic = 12 + ((dh[8] & 1) != 0 ? 4 : 0); // sizeof(dccp_hdr) + extended sequence number
        int fixedLength = basic + TypeHeaderLength(type);
        int doff = dh[4] * 4;
        if (doff < fixedLength) return HeaderReads.Drop(ctx);
        int optlen = doff - fixedLength;
        if (optlen == 0) return false;
        if (!HeaderReads.TryRead(p, HeaderReads.ThOff(p) + fixedLength, optlen, out ReadOnlySpan<byte> op)) return HeaderReads.Drop(ctx);
        return HeaderReads.HasOption(op, option);
    }
}
