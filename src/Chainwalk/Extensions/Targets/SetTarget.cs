using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Targets;

/// <summary>One set reference of <c>-j SET</c> (struct xt_set_info): the set and the src/dst direction of each dimension.</summary>
public sealed class SetReference
{
    public string Name = string.Empty;

    /// <summary>The kernel's set index.</summary>
    public ushort Index;

    /// <summary>Number of dimensions (1-6).</summary>
    public byte Dimensions;

    /// <summary>Bit i (1-based) set: dimension i uses the source; clear: the destination.</summary>
    public byte SourceFlags;

    public bool IsSource(int dimension) => (SourceFlags & (1 << dimension)) != 0;
}

/// <summary>The IPSET_FLAG_* bits of <c>-j SET</c> revision 3.</summary>
[Flags]
public enum SetTargetFlags : uint
{
    None = 0,
    Exist = 1 << 2,
    MapMark = 1 << 5,
    MapPriority = 1 << 6,
    MapQueue = 1 << 7,
}

/// <summary>Options of <c>-j SET</c> revision 3 (struct xt_set_info_target_v3).</summary>
public sealed class SetTargetData : ExtensionData
{
    public SetReference? AddSet;
    public SetReference? DelSet;
    public SetReference? MapSet;
    public SetTargetFlags Flags;

    /// <summary>The --timeout of added entries; uint.MaxValue = none given.</summary>
    public uint Timeout = uint.MaxValue;

    public override ExtensionData Clone()
    {
        var c = (SetTargetData)MemberwiseClone();
        c.AddSet = Copy(AddSet);
        c.DelSet = Copy(DelSet);
        c.MapSet = Copy(MapSet);
        return c;
    }

    private static SetReference? Copy(SetReference? r) =>
        r is null ? null : new SetReference { Name = r.Name, Index = r.Index, Dimensions = r.Dimensions, SourceFlags = r.SourceFlags };
}

/// <summary>
/// <c>-j SET --add-set|--del-set|--map-set NAME src|dst[,…] [--exist] [--timeout N] [--map-mark] [--map-prio]
/// [--map-queue]</c> (libxt_SET.c revision 3, old-style parser). The set must exist in the kernel's ipset
/// registry when the rule is parsed; Chainwalk has no ipsets, so every set is reported missing unless
/// <see cref="LookupSet"/> says otherwise.
/// </summary>
public sealed class SetTarget : XtExtension<SetTargetData>
{
    private const int AddId = 0, DelId = 1, ExistId = 2, TimeoutId = 3, MapId = 4, MapMarkId = 5, MapPrioId = 6, MapQueueId = 7;
    private const int MaxDimensions = 6;

    /// <summary>
    /// Finds an ipset by name for a family: its index, or null when it does not exist (the default: no
    /// sets). Throw an <see cref="XtablesException"/> for a set of the wrong family.
    /// </summary>
    public static Func<string, IpFamily, ushort?> LookupSet { get; set; } = LookupInKernelObjects;

    /// <summary>The default lookup: the sets of <see cref="KernelObjects.Current"/> (index = position in it).</summary>
    private static ushort? LookupInKernelObjects(string name, IpFamily family)
    {
        ushort index = 0;
        foreach (var (setName, setFamily) in KernelObjects.Current.IpSets)
        {
            if (setName == name)
            {
                if (setFamily is { } f && f != family)
                    throw XtablesException.Param($"The protocol family of set {name} is {(f == IpFamily.V4 ? "IPv4" : "IPv6")}, which is not applicable.\n");
                return index;
            }
            index++;
        }
        return null;
    }

    public override string Name => "SET";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("add-set", AddId, OptionArg.Required, OptFlags.Manual),
        new("del-set", DelId, OptionArg.Required, OptFlags.Manual),
        new("exist", ExistId, OptionArg.None, OptFlags.Manual),
        new("timeout", TimeoutId, OptionArg.Required, OptFlags.Manual),
        new("map-set", MapId, OptionArg.Required, OptFlags.Manual),
        new("map-mark", MapMarkId, OptionArg.None, OptFlags.Manual),
        new("map-prio", MapPrioId, OptionArg.None, OptFlags.Manual),
        new("map-queue", MapQueueId, OptionArg.None, OptFlags.Manual),
    ];

    protected override void Init(ParseContext ctx, SetTargetData data) => data.Revision = 3;

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, SetTargetData d)
    {
        switch (option.Id)
        {
            case AddId:
                d.AddSet = ParseReference(ctx, d.AddSet, argument!, "add-set");
                break;
            case DelId:
                d.DelSet = ParseReference(ctx, d.DelSet, argument!, "del-set");
                break;
            case MapId:
                d.MapSet = ParseReference(ctx, d.MapSet, argument!, "map-set");
                break;
            case ExistId:
                d.Flags |= SetTargetFlags.Exist;
                break;
            case TimeoutId:
                if (!TargetParsing.StrToUiWhole(argument!, 0, uint.MaxValue - 1, out ulong t))
                    throw XtablesException.Param($"Invalid value for option --timeout or out of range 0-{uint.MaxValue - 1}");
                d.Timeout = (uint)t;
                break;
            case MapMarkId:
                d.Flags |= SetTargetFlags.MapMark;
                break;
            case MapPrioId:
                d.Flags |= SetTargetFlags.MapPriority;
                break;
            case MapQueueId:
                d.Flags |= SetTargetFlags.MapQueue;
                break;
        }
    }

    private static SetReference ParseReference(ParseContext ctx, SetReference? existing, string name, string what)
    {
        if (existing is { Dimensions: > 0 }) throw XtablesException.Param($"--{what} can be specified only once");
        string? dirs = ctx.PeekArgument();
        if (dirs is null || dirs.StartsWith('-') || dirs.StartsWith('!')) throw XtablesException.Param($"--{what} requires two args.");
        if (name.Length > 31) throw XtablesException.Param($"setname `{name}' too long, max 31 characters.");
        ushort index = LookupSet(name, ctx.Family) ?? throw XtablesException.Param($"Set {name} doesn't exist.\n");
        var r = new SetReference { Name = name, Index = index };
        string? rest = dirs;
        while (r.Dimensions < MaxDimensions && rest is not null)
        {
            r.Dimensions++;
            int comma = rest.IndexOf(',', StringComparison.Ordinal);
            string piece = comma < 0 ? rest : rest[..comma];
            rest = comma < 0 ? null : rest[(comma + 1)..];
            if (piece.StartsWith("src", StringComparison.Ordinal)) r.SourceFlags |= (byte)(1 << r.Dimensions);
            else if (!piece.StartsWith("dst", StringComparison.Ordinal))
                throw XtablesException.Param("You must spefify (the comma separated list of) 'src' or 'dst'.");
        }
        if (rest is not null) throw XtablesException.Param($"Can't be more src/dst options than {MaxDimensions}.");
        ctx.SkipArgument();
        return r;
    }

    protected override void FinalCheck(ParseContext ctx, SetTargetData d)
    {
        bool add = (d.Given & (1UL << AddId)) != 0, del = (d.Given & (1UL << DelId)) != 0, map = (d.Given & (1UL << MapId)) != 0;
        bool Given(int id) => (d.Given & (1UL << id)) != 0;
        if (!add && !del && !map)
            throw XtablesException.Param("You must specify either `--add-set' or `--del-set' or `--map-set'");
        if (!add)
        {
            if (Given(ExistId)) throw XtablesException.Param("Flag `--exist' can be used with `--add-set' only");
            if (Given(TimeoutId)) throw XtablesException.Param("Option `--timeout' can be used with `--add-set' only");
        }
        if (!map)
        {
            if (Given(MapMarkId)) throw XtablesException.Param("Flag `--map-mark' can be used with `--map-set' only");
            if (Given(MapPrioId)) throw XtablesException.Param("Flag `--map-prio' can be used with `--map-set' only");
            if (Given(MapQueueId)) throw XtablesException.Param("Flag `--map-queue' can be used with `--map-set' only");
        }
        if (map && !Given(MapMarkId) && !Given(MapPrioId) && !Given(MapQueueId))
            throw XtablesException.Param("You must specify flags `--map-mark' or '--map-prio` or `--map-queue'");
    }

    private static void AppendReference(StringBuilder sb, string prefix, SetReference? r)
    {
        if (r is null) return;
        sb.Append(' ').Append(prefix).Append(' ').Append(r.Name);
        for (int i = 1; i <= r.Dimensions; i++)
        {
            sb.Append(i == 1 ? ' ' : ',').Append(r.IsSource(i) ? "src" : "dst");
        }
    }

    private static void Write(StringBuilder sb, SetTargetData d, string dash)
    {
        AppendReference(sb, dash + "add-set", d.AddSet);
        if ((d.Flags & SetTargetFlags.Exist) != 0) sb.Append(' ').Append(dash).Append("exist");
        if (d.Timeout != uint.MaxValue) sb.Append(' ').Append(dash).Append("timeout ").Append(TargetParsing.Dec(d.Timeout));
        AppendReference(sb, dash + "del-set", d.DelSet);
        AppendReference(sb, dash + "map-set", d.MapSet);
        if ((d.Flags & SetTargetFlags.MapMark) != 0) sb.Append(' ').Append(dash).Append("map-mark");
        if ((d.Flags & SetTargetFlags.MapPriority) != 0) sb.Append(' ').Append(dash).Append("map-prio");
        if ((d.Flags & SetTargetFlags.MapQueue) != 0) sb.Append(' ').Append(dash).Append("map-queue");
    }

    protected override void Save(StringBuilder sb, SetTargetData d, IpFamily family) => Write(sb, d, "--");

    protected override void Print(StringBuilder sb, SetTargetData d, IpFamily family, bool numeric) => Write(sb, d, string.Empty);

    /// <summary>
    /// xt_set.c set_target_v3: --add-set adds the packet's element (--exist refreshes an existing one's
    /// timeout; --timeout, else the set's default), --del-set deletes it, --map-set tests it and, on a
    /// match, maps the entry's skbinfo (the host's sets keep none: mark unchanged, priority 0, queue 0).
    /// Failures are silent, as in the kernel. The verdict is always CONTINUE.
    /// </summary>
    protected override Verdict Execute(PacketContext ctx, SetTargetData d)
    {
        if (ctx.Netfilter.Ipsets is not { } store) return Verdict.Continue;
        if (d.AddSet is { } add && store.Get(add.Name) is { } addSet)
        {
            long? timeout = d.Timeout == uint.MaxValue ? null : Math.Min(d.Timeout, 2147483u);
            IpsetEval.Add(ctx, store, addSet, new IpsetOptions(add.Dimensions, add.SourceFlags), timeout, (d.Flags & SetTargetFlags.Exist) != 0);
        }
        if (d.DelSet is { } del && store.Get(del.Name) is { } delSet)
            IpsetEval.Delete(ctx, store, delSet, new IpsetOptions(del.Dimensions, del.SourceFlags));
        if (d.MapSet is { } map && store.Get(map.Name) is { } mapSet)
        {
            IpsetTestResult r = IpsetEval.Test(ctx, store, mapSet, new IpsetOptions(map.Dimensions, map.SourceFlags));
            if (r == IpsetTestResult.Match)
            {
                if ((d.Flags & SetTargetFlags.MapPriority) != 0) ctx.Skb.Priority = 0;
            }
        }
        return Verdict.Continue;
    }
}
