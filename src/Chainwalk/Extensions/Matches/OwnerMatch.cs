using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;

namespace Chainwalk.Extensions.Matches;

/// <summary>What a <c>-m owner</c> rule tests (XT_OWNER_* bits).</summary>
[Flags]
public enum OwnerFlags : byte
{
    None = 0,
    Uid = 1,
    Gid = 2,
    Socket = 4,
    SupplGroups = 8,
}

/// <summary>Options of <c>-m owner</c> (struct xt_owner_match_info, revision 1).</summary>
public sealed class OwnerData : ExtensionData
{
    public uint UidMin;
    public uint UidMax;
    public uint GidMin;
    public uint GidMax;
    public OwnerFlags Match;
    public OwnerFlags Invert;
}

/// <summary><c>-m owner</c> (libxt_owner.c, xt_owner.c): the socket's owner; only in OUTPUT and POSTROUTING.</summary>
public sealed class OwnerMatch : XtExtension<OwnerData>
{
    private const int OUser = 0, OGroup = 1, OSockExists = 2, OSupplGroups = 3;

    public override string Name => "owner";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override HookMask Hooks => HookMask.Output | HookMask.Postrouting;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("uid-owner", OUser, OptionArg.Required, OptFlags.Invert),
        new("gid-owner", OGroup, OptionArg.Required, OptFlags.Invert),
        new("socket-exists", OSockExists, OptionArg.None, OptFlags.Invert),
        new("suppl-groups", OSupplGroups, OptionArg.None),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, OwnerData d)
    {
        switch (option.Id)
        {
            case OUser:
                if (ctx.Names.TryGetUserId(argument!, out uint uid)) d.UidMin = d.UidMax = uid;
                else (d.UidMin, d.UidMax) = ParseRange(ctx, argument!, "--uid-owner");
                Set(d, OwnerFlags.Uid, invert);
                break;
            case OGroup:
                if (ctx.Names.TryGetGroupId(argument!, out uint gid)) d.GidMin = d.GidMax = gid;
                else (d.GidMin, d.GidMax) = ParseRange(ctx, argument!, "--gid-owner");
                Set(d, OwnerFlags.Gid, invert);
                break;
            case OSockExists:
                Set(d, OwnerFlags.Socket, invert);
                break;
            case OSupplGroups:
                if ((d.Match & OwnerFlags.Gid) == 0) throw BadValue(ctx, "--suppl-groups", "you need to use --gid-owner first");
                d.Match |= OwnerFlags.SupplGroups;
                break;
        }
    }

    private static void Set(OwnerData d, OwnerFlags f, bool invert)
    {
        d.Match |= f;
        if (invert) d.Invert |= f;
    }

    private static Syntax.XtablesException BadValue(ParseContext ctx, string option, string value) =>
        ctx.Error($"owner: Bad value for \"{option}\" option: \"{value}\"");

    /// <summary>owner_parse_range: "N", "N-M" or "N:M", each 0 to 2^32-2.</summary>
    private static (uint, uint) ParseRange(ParseContext ctx, string s, string option)
    {
        int sep = s.IndexOfAny(['-', ':']);
        ReadOnlySpan<char> first = sep < 0 ? s : s.AsSpan(0, sep);
        // strtoul may itself consume a leading sign; only a separator after digits splits the range.
        if (sep == 0)
        {
            int used = NumberParsing.ParseCPrefix(s, 0, out _, out _);
            if (used > 0) sep = s.IndexOfAny(['-', ':'], used);
            first = sep < 0 ? s : s.AsSpan(0, sep);
        }
        if (!NumberParsing.TryParseCUnsigned(first, uint.MaxValue - 1, out ulong from)) throw BadValue(ctx, option, s);
        ulong to = from;
        if (sep >= 0 && !NumberParsing.TryParseCUnsigned(s.AsSpan(sep + 1), uint.MaxValue - 1, out to)) throw BadValue(ctx, option, s);
        return ((uint)from, (uint)to);
    }

    protected override void FinalCheck(ParseContext ctx, OwnerData d)
    {
        if (d.Given == 0) throw ctx.Error("owner: At least one of --uid-owner, --gid-owner or --socket-exists is required");
    }

    /// <summary>owner_check: ranges must not be reversed.</summary>
    protected override string? CheckEntry(RuleCheckContext ctx, OwnerData d)
    {
        if ((d.Match & OwnerFlags.Uid) != 0 && d.UidMax < d.UidMin) return RulesetEditor.InvalidArgument;
        if ((d.Match & OwnerFlags.Gid) != 0 && d.GidMax < d.GidMin) return RulesetEditor.InvalidArgument;
        return null;
    }

    private static void Item(StringBuilder sb, OwnerData d, string label, OwnerFlags flag, bool numeric)
    {
        if ((d.Match & flag) == 0) return;
        if ((d.Invert & flag) != 0) sb.Append(" !");
        sb.Append(' ').Append(label);
        if (flag is not (OwnerFlags.Uid or OwnerFlags.Gid)) return;
        uint min = flag == OwnerFlags.Uid ? d.UidMin : d.GidMin;
        uint max = flag == OwnerFlags.Uid ? d.UidMax : d.GidMax;
        if (min != max)
        {
            sb.Append(' ').Append(XtParse.Dec(min)).Append('-').Append(XtParse.Dec(max));
            return;
        }
        string? name = numeric ? null : flag == OwnerFlags.Uid ? NameDb.Printing.UserName(min) : NameDb.Printing.GroupName(min);
        sb.Append(' ').Append(name ?? XtParse.Dec(min));
    }

    protected override void Save(StringBuilder sb, OwnerData d, IpFamily family)
    {
        Item(sb, d, "--socket-exists", OwnerFlags.Socket, true);
        Item(sb, d, "--uid-owner", OwnerFlags.Uid, true);
        Item(sb, d, "--gid-owner", OwnerFlags.Gid, true);
        Item(sb, d, "--suppl-groups", OwnerFlags.SupplGroups, true);
    }

    protected override void Print(StringBuilder sb, OwnerData d, IpFamily family, bool numeric)
    {
        Item(sb, d, "owner socket exists", OwnerFlags.Socket, numeric);
        Item(sb, d, "owner UID match", OwnerFlags.Uid, numeric);
        Item(sb, d, "owner GID match", OwnerFlags.Gid, numeric);
        Item(sb, d, "incl. suppl. groups", OwnerFlags.SupplGroups, numeric);
    }

    /// <summary>
    /// xt_owner.c: without a socket (forwarded, received, or built by the kernel such as REJECT's reply)
    /// the rule matches only when every option it gives is inverted; --socket-exists with ! then matches.
    /// --gid-owner with --suppl-groups also accepts a supplementary group in range.
    /// </summary>
    protected override bool Match(PacketContext ctx, OwnerData d)
    {
        if (ctx.Skb.Socket is not { } sk) return (d.Match ^ d.Invert) == OwnerFlags.None;
        if ((d.Match & d.Invert & OwnerFlags.Socket) != 0) return false;
        if ((d.Match & OwnerFlags.Uid) != 0 && (sk.Uid >= d.UidMin && sk.Uid <= d.UidMax) == ((d.Invert & OwnerFlags.Uid) != 0)) return false;
        if ((d.Match & OwnerFlags.Gid) != 0)
        {
            bool hit = sk.Gid >= d.GidMin && sk.Gid <= d.GidMax;
            if (!hit && (d.Match & OwnerFlags.SupplGroups) != 0)
            {
                foreach (uint g in sk.Groups)
                {
                    if (g >= d.GidMin && g <= d.GidMax)
                    {
                        hit = true;
                        break;
                    }
                }
            }
            if (hit == ((d.Invert & OwnerFlags.Gid) != 0)) return false;
        }
        return true;
    }
}
