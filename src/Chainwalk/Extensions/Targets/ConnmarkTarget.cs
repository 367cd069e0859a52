using Chainwalk.Conntrack;
using Chainwalk.Engine;
using System.Text;
using Chainwalk.Net;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Targets;

/// <summary>What CONNMARK does (XT_CONNMARK_SET/SAVE/RESTORE).</summary>
public enum ConnmarkMode : byte
{
    Set = 0,
    Save = 1,
    Restore = 2,
}

/// <summary>CONNMARK revision 2 (struct xt_connmark_tginfo2).</summary>
public sealed class ConnmarkTargetData : ExtensionData
{
    public ConnmarkMode Mode;
    public uint CtMark;
    public uint CtMask = uint.MaxValue;
    public uint NfMask = uint.MaxValue;

    /// <summary>True = right shift (D_SHIFT_RIGHT), false = left.</summary>
    public bool ShiftRight;
    public byte ShiftBits;
}

/// <summary>
/// <c>-j CONNMARK</c> revision 2 (libxt_CONNMARK.c, xt_connmark.c): set (as MARK) the connection mark, or
/// save/restore it between packet and connection with --nfmask/--ctmask (--mask = both) and a bit shift.
/// </summary>
public sealed class ConnmarkTarget : XtExtension<ConnmarkTargetData>
{
    private const int OSetMark = 0, OSaveMark = 1, ORestoreMark = 2, OAndMark = 3, OOrMark = 4, OXorMark = 5,
        OLeftShift = 6, ORightShift = 7, OSetXmark = 8, OCtMask = 9, ONfMask = 10, OMask = 11;
    private const ulong FOpAny = (1UL << OSetMark) | (1UL << OSaveMark) | (1UL << ORestoreMark) | (1UL << OAndMark)
        | (1UL << OOrMark) | (1UL << OXorMark) | (1UL << OSetXmark);

    public override string Name => "CONNMARK";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("set-xmark", OSetXmark) { Excludes = FOpAny },
        new("set-mark", OSetMark) { Excludes = FOpAny },
        new("and-mark", OAndMark) { Excludes = FOpAny },
        new("or-mark", OOrMark) { Excludes = FOpAny },
        new("xor-mark", OXorMark) { Excludes = FOpAny },
        new("save-mark", OSaveMark, OptionArg.None) { Excludes = FOpAny },
        new("restore-mark", ORestoreMark, OptionArg.None) { Excludes = FOpAny },
        new("left-shift-mark", OLeftShift),
        new("right-shift-mark", ORightShift),
        new("ctmask", OCtMask) { Excludes = 1UL << OMask },
        new("nfmask", ONfMask) { Excludes = 1UL << OMask },
        new("mask", OMask) { Excludes = (1UL << OCtMask) | (1UL << ONfMask) },
    ];

    protected override void Init(ParseContext ctx, ConnmarkTargetData data) => data.Revision = 2;

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, ConnmarkTargetData d)
    {
        string arg = argument ?? string.Empty;
        switch (option.Id)
        {
            case OSetXmark:
                d.Mode = ConnmarkMode.Set;
                (d.CtMark, d.CtMask) = MarkTarget.ParseOp(4, option.Name, arg, Name);
                break;
            case OSetMark:
                d.Mode = ConnmarkMode.Set;
                (d.CtMark, d.CtMask) = MarkTarget.ParseOp(0, option.Name, arg, Name);
                break;
            case OAndMark:
                d.Mode = ConnmarkMode.Set;
                (d.CtMark, d.CtMask) = MarkTarget.ParseOp(1, option.Name, arg, Name);
                break;
            case OOrMark:
                d.Mode = ConnmarkMode.Set;
                (d.CtMark, d.CtMask) = MarkTarget.ParseOp(2, option.Name, arg, Name);
                break;
            case OXorMark:
                d.Mode = ConnmarkMode.Set;
                (d.CtMark, d.CtMask) = MarkTarget.ParseOp(3, option.Name, arg, Name);
                break;
            case OSaveMark:
                d.Mode = ConnmarkMode.Save;
                break;
            case ORestoreMark:
                d.Mode = ConnmarkMode.Restore;
                break;
            case OLeftShift:
            case ORightShift:
                d.ShiftBits = (byte)XtParse.OptUInt(arg, 0, 32, Name, option.Name);
                d.ShiftRight = option.Id == ORightShift;
                break;
            case OCtMask:
                d.CtMask = (uint)XtParse.OptUInt(arg, 0, uint.MaxValue, Name, option.Name);
                break;
            case ONfMask:
                d.NfMask = (uint)XtParse.OptUInt(arg, 0, uint.MaxValue, Name, option.Name);
                break;
            case OMask:
                d.NfMask = d.CtMask = (uint)XtParse.OptUInt(arg, 0, uint.MaxValue, Name, option.Name);
                break;
        }
    }

    protected override void FinalCheck(ParseContext ctx, ConnmarkTargetData d)
    {
        if ((d.Given & FOpAny) == 0) throw ctx.Error("CONNMARK target: No operation specified");
    }

    /// <summary>connmark_tg_shift (xt_connmark.c): set, save or restore with masks and shift; no connection: nothing.</summary>
    protected override Verdict Execute(PacketContext ctx, ConnmarkTargetData d)
    {
        if (!ConntrackHooks.TryGet(ctx.Skb, out ConnEntry ct, out _)) return Verdict.Continue;
        int shift = d.ShiftBits & 31;
        switch (d.Mode)
        {
            case ConnmarkMode.Set:
                {
                    uint v = (ct.Mark & ~d.CtMask) ^ d.CtMark;
                    v = d.ShiftRight ? v >> shift : v << shift;
                    ct.Mark = v;
                    break;
                }
            case ConnmarkMode.Save:
                {
                    uint t = ctx.Skb.Mark & d.NfMask;
                    t = d.ShiftRight ? t >> shift : t << shift;
                    ct.Mark = (ct.Mark & ~d.CtMask) ^ t;
                    break;
                }
            default:
                {
                    uint t = ct.Mark & d.CtMask;
                    t = d.ShiftRight ? t >> shift : t << shift;
                    ctx.Skb.Mark = (ctx.Skb.Mark & ~d.NfMask) ^ t;
                    break;
                }
        }
        return Verdict.Continue;
    }

    protected override void Save(StringBuilder sb, ConnmarkTargetData d, IpFamily family)
    {
        switch (d.Mode)
        {
            case ConnmarkMode.Set:
                sb.Append(" --set-xmark ").Append(XtParse.Hex(d.CtMark)).Append('/').Append(XtParse.Hex(d.CtMask));
                break;
            case ConnmarkMode.Save:
                sb.Append(" --save-mark --nfmask ").Append(XtParse.Hex(d.NfMask)).Append(" --ctmask ").Append(XtParse.Hex(d.CtMask));
                break;
            default:
                sb.Append(" --restore-mark --nfmask ").Append(XtParse.Hex(d.NfMask)).Append(" --ctmask ").Append(XtParse.Hex(d.CtMask));
                break;
        }
        if (d.ShiftBits != 0) sb.Append(" --").Append(d.ShiftRight ? "right-shift-mark " : "left-shift-mark ").Append(d.ShiftBits);
    }

    protected override void Print(StringBuilder sb, ConnmarkTargetData d, IpFamily family, bool numeric)
    {
        switch (d.Mode)
        {
            case ConnmarkMode.Set:
                MarkTarget.PrintOp(sb, "CONNMARK", d.CtMark, d.CtMask);
                break;
            case ConnmarkMode.Save:
                if (d.NfMask == uint.MaxValue && d.CtMask == uint.MaxValue) sb.Append(" CONNMARK save");
                else if (d.NfMask == d.CtMask) sb.Append(" CONNMARK save mask ").Append(XtParse.Hex(d.NfMask));
                else sb.Append(" CONNMARK save nfmask ").Append(XtParse.Hex(d.NfMask)).Append(" ctmask ~").Append(XtParse.Hex(d.CtMask));
                break;
            default:
                if (d.CtMask == uint.MaxValue && d.NfMask == uint.MaxValue) sb.Append(" CONNMARK restore");
                else if (d.CtMask == d.NfMask) sb.Append(" CONNMARK restore mask ").Append(XtParse.Hex(d.CtMask));
                else sb.Append(" CONNMARK restore ctmask ").Append(XtParse.Hex(d.CtMask)).Append(" nfmask ~").Append(XtParse.Hex(d.NfMask));
                break;
        }
        if (d.ShiftBits != 0) sb.Append(' ').Append(d.ShiftRight ? "right-shift-mark " : "left-shift-mark ").Append(d.ShiftBits);
    }
}
