using Chainwalk.Conntrack;
using Chainwalk.Engine;
using System.Globalization;
using System.Text;
using Chainwalk.Net;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m connlabel</c> (struct xt_connlabel_mtinfo).</summary>
public sealed class ConnlabelData : ExtensionData
{
    public ushort Bit;
    public bool Invert;
    public bool Set;
}

/// <summary>
/// <c>-m connlabel [!] --label NAME|BIT [--set]</c> (libxt_connlabel.c, xt_connlabel.c). Names come from
/// /etc/xtables/connlabel.conf ("BIT NAME" lines). Without that file only numbers work and libnetfilter_conntrack
/// warns "cannot open"; the kernel refuses bits from 128 on (ERANGE).
/// </summary>
public sealed class ConnlabelMatch : XtExtension<ConnlabelData>
{
    private const int OLabel = 0, OSet = 1;

    public const string ConfigPath = "/etc/xtables/connlabel.conf";

    public override string Name => "connlabel";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("label", OLabel, OptionArg.Required, OptFlags.Invert | OptFlags.Mandatory),
        new("set", OSet, OptionArg.None),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, ConnlabelData d)
    {
        if (option.Id == OSet)
        {
            d.Set = true;
            return;
        }
        string arg = argument!;
        if (arg.Length < 1) throw ctx.Error("Argument must have a minimum length of 1 characters\n");
        int bit = -1;
        if (NumberParsing.ParseCPrefix(arg, 0, out ulong v, out bool overflow) == arg.Length)
        {
            // strtoul's result is kept in an int: large values turn negative and fall through to the names.
            bit = overflow ? -1 : unchecked((int)(uint)v);
        }
        if (bit < 0)
        {
            Dictionary<string, int>? map = LoadMap(out string? warning);
            if (map is null) ctx.Warn(warning!);
            if (map is null || !map.TryGetValue(arg, out bit)) throw ctx.Error($"label '{arg}' not found or invalid value");
        }
        d.Bit = unchecked((ushort)bit);
        if (invert) d.Invert = true;
    }

    /// <summary>The name map, or null with the warning libnetfilter_conntrack prints when the file cannot be read.</summary>
    private static Dictionary<string, int>? LoadMap(out string? warning)
    {
        warning = null;
        if (!File.Exists(ConfigPath))
        {
            warning = $"Warning: cannot open {ConfigPath}: No such file or directory";
            return null;
        }
        var map = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (string raw in File.ReadLines(ConfigPath))
        {
            string line = raw.Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            string[] f = line.Split([' ', '\t'], 2, StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 2 || !int.TryParse(f[0], NumberStyles.None, CultureInfo.InvariantCulture, out int b)) continue;
            map.TryAdd(f[1].Trim(), b);
        }
        if (map.Count == 0) throw new XtablesException(XtablesExit.ResourceProblem, $"cannot parse {ConfigPath}: no labels found");
        return map;
    }

    private static string? LabelName(int bit)
    {
        if (!File.Exists(ConfigPath)) return null;
        try
        {
            Dictionary<string, int>? map = LoadMap(out _);
            return map?.FirstOrDefault(kv => kv.Value == bit).Key is { Length: > 0 } n ? n : null;
        }
        catch (XtablesException)
        {
            return null;
        }
    }

    /// <summary>connlabel_mt: the label bit of the connection; --set sets it when missing (and matches).</summary>
    protected override bool Match(PacketContext ctx, ConnlabelData d)
    {
        if (!ConntrackHooks.TryGet(ctx.Skb, out ConnEntry ct, out _) || d.Bit >= 128) return d.Invert;
        UInt128 bit = UInt128.One << d.Bit;
        if ((ct.Labels & bit) != 0) return !d.Invert;
        if (d.Set)
        {
            ct.Labels |= bit;
            return !d.Invert;
        }
        return d.Invert;
    }

    protected override string? CheckEntry(RuleCheckContext ctx, ConnlabelData d) =>
        d.Bit >= 128 ? "Numerical result out of range" : null;

    protected override void Save(StringBuilder sb, ConnlabelData d, IpFamily family)
    {
        if (d.Invert) sb.Append(" !");
        string? name = LabelName(d.Bit);
        sb.Append(" --label \"").Append(name ?? XtParse.Dec(d.Bit)).Append('"');
        if (d.Set) sb.Append(" --set");
    }

    protected override void Print(StringBuilder sb, ConnlabelData d, IpFamily family, bool numeric)
    {
        sb.Append(" connlabel");
        if (d.Invert) sb.Append(" !");
        string? name = numeric ? null : LabelName(d.Bit);
        if (name is null) sb.Append(' ').Append(XtParse.Dec(d.Bit));
        else sb.Append(" '").Append(name).Append('\'');
        if (d.Set) sb.Append(" set");
    }
}
