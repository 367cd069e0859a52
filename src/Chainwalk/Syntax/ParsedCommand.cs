using Chainwalk.Net;
using Chainwalk.Rules;

namespace Chainwalk.Syntax;

/// <summary>The iptables commands (CMD_* of xshared.h); -L and -Z may be combined.</summary>
[Flags]
public enum CommandKind
{
    None = 0,
    Insert = 1 << 0,
    Delete = 1 << 1,
    DeleteNum = 1 << 2,
    Replace = 1 << 3,
    Append = 1 << 4,
    List = 1 << 5,
    Flush = 1 << 6,
    Zero = 1 << 7,
    ZeroNum = 1 << 8,
    NewChain = 1 << 9,
    DeleteChain = 1 << 10,
    SetPolicy = 1 << 11,
    RenameChain = 1 << 12,
    ListRules = 1 << 13,
    Check = 1 << 14,
}

/// <summary>The generic options of iptables (OPT_* of xshared.h), in the order of its legality table.</summary>
[Flags]
public enum CommandOptions
{
    None = 0,
    Numeric = 1 << 0,
    Source = 1 << 1,
    Destination = 1 << 2,
    Protocol = 1 << 3,
    Jump = 1 << 4,
    Verbose = 1 << 5,
    Expanded = 1 << 6,
    InInterface = 1 << 7,
    OutInterface = 1 << 8,
    LineNumbers = 1 << 9,
    Counters = 1 << 10,
    Fragment = 1 << 11,
}

/// <summary>A parsed iptables/ip6tables command line (or one line of a restore file).</summary>
public sealed class ParsedCommand
{
    public required IpFamily Family { get; init; }

    public CommandKind Command { get; set; }

    public CommandOptions Options { get; set; }

    public string Table { get; set; } = "filter";

    public string? Chain { get; set; }

    public string? NewName { get; set; }

    public string? Policy { get; set; }

    /// <summary>1-based rule number for -I/-R/-D/-L/-Z/-S (0 = none given).</summary>
    public int RuleNumber { get; set; }

    public int Verbose { get; set; }

    public bool Numeric => (Options & CommandOptions.Numeric) != 0;

    public bool Exact => (Options & CommandOptions.Expanded) != 0;

    public bool LineNumbers => (Options & CommandOptions.LineNumbers) != 0;

    /// <summary>-w given; null seconds = wait forever.</summary>
    public bool Wait { get; set; }

    public double? WaitSeconds { get; set; }

    /// <summary>The rules the command line describes: one per source × destination address.</summary>
    public List<Rule> Rules { get; } = new();

    /// <summary>The name after -j/-g when it is not a target extension (a chain, maybe missing).</summary>
    public string? JumpTo { get; set; }

    /// <summary>A restore line with -4 in ip6tables-restore (or -6 in iptables-restore) is skipped.</summary>
    public bool SkipLine { get; set; }

    public bool HelpRequested { get; set; }

    public bool VersionRequested { get; set; }

    /// <summary>Text printed to stderr while parsing that is not an error (e.g. deprecation notices).</summary>
    public List<string> Warnings { get; } = new();

    /// <summary>Back to a new command's values for <paramref name="table"/> (the plain restore path reuses one object for every line).</summary>
    internal void Reset(string table)
    {
        Command = CommandKind.None;
        Options = CommandOptions.None;
        Table = table;
        Chain = NewName = Policy = JumpTo = null;
        RuleNumber = Verbose = 0;
        Wait = false;
        WaitSeconds = null;
        SkipLine = HelpRequested = VersionRequested = false;
        Rules.Clear();
        Warnings.Clear();
    }
}
