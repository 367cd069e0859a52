using System.Text;
using Chainwalk.Net;
using Chainwalk.Rules;

namespace Chainwalk.Syntax;

/// <summary>Options of iptables-restore.</summary>
public sealed class RestoreOptions
{
    /// <summary>-c: take the counters in the file.</summary>
    public bool Counters { get; init; }

    /// <summary>-n: do not flush the tables named in the file.</summary>
    public bool NoFlush { get; init; }

    /// <summary>-T NAME: only this table is restored.</summary>
    public string? OnlyTable { get; init; }

    /// <summary>--test: parse and check only.</summary>
    public bool Test { get; init; }

    /// <summary>
    /// Drop the [packets:bytes] of rule lines (policy counters stay): ip6tables-nft-restore 1.8.9 -c does not pass
    /// rule counters to the kernel. Set by the ip6tables-restore front end, not when Chainwalk reloads its own state.
    /// </summary>
    public bool IgnoreRuleCounters { get; init; }
}

/// <summary>
/// Reads iptables-restore input (xtables-restore.c): "*table", ":chain policy [p:b]", rule lines run
/// as iptables commands with "-t table", and COMMIT. The whole input is applied to a copy of the
/// ruleset; on any error the copy is dropped, so every table stays as it was.
/// </summary>
public sealed class RestoreReader
{
    private readonly IpFamily _family;
    private readonly string _program;
    private readonly NameDb _names;

    /// <summary>What the lines read so far printed on stderr (extension warnings), in order.</summary>
    public List<string> Warnings { get; } = new();

    public RestoreReader(IpFamily family, string program, NameDb? names = null)
    {
        _family = family;
        _program = program;
        _names = names ?? NameDb.System;
    }

    /// <summary>
    /// After a failed <see cref="Apply"/>: the ruleset as of the last successful COMMIT (iptables-nft-restore
    /// commits table by table), or null when nothing was committed.
    /// </summary>
    public Ruleset? Committed { get; private set; }

    /// <summary>Applies <paramref name="text"/> to a clone of <paramref name="ruleset"/> and returns the new ruleset.</summary>
    public Ruleset Apply(Ruleset ruleset, string text, RestoreOptions options, StringBuilder? output = null)
    {
        Committed = null;
        Ruleset work = ruleset.Clone();
        Table? current = null;
        bool inTable = false;
        bool tableExisted = true, tableTouched = false;
        bool skipTable = false;
        int lineNo = 0;
        string[] lines = SplitLines(text, out bool lastHasNewline);
        for (int li = 0; li < lines.Length; li++)
        {
            string raw = lines[li];
            lineNo++;
            bool hasNewline = li < lines.Length - 1 || lastHasNewline;
            try
            {
                if (raw.Length == 0) continue;
                if (raw[0] == '#') continue;
                // 1.8.9 takes a COMMIT on the last line even without its newline.
                if (inTable && raw == "COMMIT")
                {
                    inTable = false;
                    if (!skipTable && current is not null) ValidateAtCommit(current);
                    // A table block that declares no chain and has no rule does not create the table.
                    if (!skipTable && current is not null && !tableExisted && !tableTouched) work.Remove(current.Name);
                    current = null;
                    Committed = work.Clone();
                    continue;
                }
                if (raw[0] == '*' && !inTable)
                {
                    string[] f = raw[1..].Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
                    if (f.Length == 0) throw XtablesException.Param($"{_program}: line {lineNo} table name invalid");
                    TableInfo? info = TableInfo.Find(f[0]);
                    if (info is null) throw XtablesException.Param($"{_program}: line {lineNo} table name '{f[0]}' invalid");
                    inTable = true;
                    tableExisted = work.Find(info.Name) is not null;
                    _jumps.Clear();
                    tableTouched = false;
                    skipTable = options.OnlyTable is not null && options.OnlyTable != f[0];
                    if (skipTable)
                    {
                        current = new Table(info, _family);
                        continue;
                    }
                    if (options.NoFlush)
                    {
                        current = work.GetOrCreate(info);
                    }
                    else
                    {
                        current = new Table(info, _family);
                        work.Replace(current);
                    }
                    continue;
                }
                if (raw[0] == ':' && inTable)
                {
                    tableTouched = true;
                    string[] f = raw[1..].Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
                    if (f.Length == 0) throw XtablesException.Param($"{_program}: line {lineNo} chain name invalid");
                    string chain = f[0];
                    if (chain.Length >= 29) throw XtablesException.Param($"Invalid chain name `{chain}' (28 chars max)");
                    if (f.Length < 2) throw XtablesException.Param($"{_program}: line {lineNo} policy invalid");
                    string policy = f[1];
                    if (skipTable) continue;
                    Chain? existing = current!.Find(chain);
                    if (existing is { IsBuiltin: true } && policy is not (Verdicts.Accept or Verdicts.Drop or "-"))
                    {
                        throw XtablesException.Other($"{_family.Tool()}: Bad policy name.");
                    }
                    if (existing is { IsBuiltin: true })
                    {
                        Counters counters = default;
                        if (options.Counters)
                        {
                            if (f.Length < 3 || !TryParseCounters(f[2], out counters))
                                throw XtablesException.Param($"invalid policy counters for chain '{chain}'");
                        }
                        if (policy is Verdicts.Accept or Verdicts.Drop)
                        {
                            existing.Policy = policy;
                            existing.Counters = counters;
                        }
                    }
                    else if (existing is not null)
                    {
                        existing.Rules.Clear();
                    }
                    else
                    {
                        current.AddUserChain(chain);
                    }
                    continue;
                }
                if (!inTable)
                {
                    throw new XtablesException(XtablesExit.OtherProblem, $"{_program}: line {lineNo} failed") { Verbatim = true };
                }
                if (skipTable) continue;
                tableTouched = true;
                RunRuleLine(work, current!, hasNewline ? raw + "\n" : raw, lineNo, options, output);
            }
            catch (XtablesException ex)
            {
                ex.Line ??= lineNo;
                throw;
            }
        }
        if (inTable)
        {
            throw new XtablesException(XtablesExit.OtherProblem, $"{_program}: COMMIT expected at line {lineNo + 1}") { Line = -1, Verbatim = true };
        }
        return work;
    }

    private void RunRuleLine(Ruleset work, Table current, string raw, int lineNo, RestoreOptions options, StringBuilder? output)
    {
        string rest = raw;
        var argv = new List<string> { _program, "-t", current.Name };
        string? pcnt = null, bcnt = null;
        if (rest.StartsWith('['))
        {
            int close = rest.IndexOf(']', StringComparison.Ordinal);
            if (close < 0) throw XtablesException.Param($"Bad line {lineNo}: need ]\n");
            string inner = rest[1..close];
            int colon = inner.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0) throw XtablesException.Param($"Bad line {lineNo}: need :\n");
            pcnt = inner[..colon];
            bcnt = inner[(colon + 1)..];
            rest = rest[(close + 1)..];
        }
        if (options.Counters && !options.IgnoreRuleCounters && pcnt is not null && bcnt is not null)
        {
            argv.Add("--set-counters");
            argv.Add(pcnt);
            argv.Add(bcnt);
        }
        argv.AddRange(Tokenize(rest, lineNo));
        var parser = new CommandLineParser(_family, _program, _names, restore: true) { Line = lineNo };
        ParsedCommand cmd;
        try
        {
            cmd = parser.Parse(argv.ToArray());
        }
        catch (XtablesException ex) when (ex.Preceding is { } pre)
        {
            // The failing line's own warnings were printed after those of the earlier lines.
            Warnings.AddRange(pre);
            ex.Preceding = null;
            throw;
        }
        Warnings.AddRange(cmd.Warnings);
        if (cmd.SkipLine) return;
        var exec = new CommandExecutor(work, _names) { DeferValidation = true };
        exec.Execute(cmd);
        string? op = cmd.Command switch
        {
            CommandKind.Append => "RULE_APPEND",
            CommandKind.Insert => "RULE_INSERT",
            CommandKind.Replace => "RULE_REPLACE",
            _ => null,
        };
        if (op is not null)
        {
            foreach (Rule r in cmd.Rules) _ruleLines[r] = (lineNo, op);
            foreach (Rule r in cmd.Rules)
            {
                if (r.Target is { IsChainJump: true } t) _jumps.Add(new JumpLine(lineNo, op, cmd.Chain!, t.Name));
            }
        }
        output?.Append(exec.Output);
    }

    /// <summary>A jump added by a rule line of the table block being restored.</summary>
    private sealed record JumpLine(int Line, string Operation, string Chain, string Target);

    private readonly List<JumpLine> _jumps = new();

    /// <summary>The restore line and operation that added each rule of the block, for the kernel's error report.</summary>
    private readonly Dictionary<Rule, (int Line, string Op)> _ruleLines = new(ReferenceEqualityComparer.Instance);

    /// <summary>
    /// The table checks at COMMIT. A jump loop reachable from a built-in chain is blamed, as the kernel does, on
    /// the first rule line (in file order) whose jump closes such a loop or makes one reachable.
    /// </summary>
    private void ValidateAtCommit(Table table)
    {
        // The missing-jump-target check comes first (the parser's "Chain 'X' does not exist", deferred to COMMIT).
        foreach (Chain c in table.Chains)
        {
            foreach (Rule r in c.Rules) RulesetEditor.CheckJumpTarget(table, r);
        }
        // nf_tables reports every refused rule of the batch, each with its own line and chain.
        var refused = new List<(int Line, string Text)>();
        foreach (var (chain, rule, problem) in RulesetEditor.FindRuleProblems(table))
        {
            if (!_ruleLines.TryGetValue(rule, out (int Line, string Op) at)) continue;
            refused.Add((at.Line, $"line {at.Line}: {at.Op} failed ({problem}): rule in chain {chain.Name}"));
        }
        if (refused.Count > 0)
        {
            string text = string.Concat(refused.OrderBy(x => x.Line).Select(x => "\n" + x.Text));
            throw new XtablesException(XtablesExit.ResourceProblem, text) { Line = -1 };
        }
        try
        {
            RulesetEditor.Validate(table, "RULE_APPEND", table.Name);
        }
        catch (XtablesException ex) when (ex.Exit == XtablesExit.ResourceProblem && ex.Message.Contains("(Too many links)", StringComparison.Ordinal))
        {
            // The jumps that were there before this block's rule lines, then this block's, one by one.
            var edges = new List<(string From, string To)>();
            foreach (Chain c in table.Chains)
            {
                foreach (Rule r in c.Rules)
                {
                    if (r.Target is { IsChainJump: true } t) edges.Add((c.Name, t.Name));
                }
            }
            foreach (JumpLine j in _jumps) edges.Remove((j.Chain, j.Target));
            foreach (JumpLine j in _jumps)
            {
                edges.Add((j.Chain, j.Target));
                if (HasReachableLoop(table, edges))
                {
                    throw new XtablesException(XtablesExit.ResourceProblem, $" {j.Operation} failed (Too many links): rule in chain {j.Chain}") { Line = j.Line };
                }
            }
            throw;
        }
    }

    private static bool HasReachableLoop(Table table, List<(string From, string To)> edges)
    {
        var next = edges.GroupBy(e => e.From, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Select(e => e.To).ToList(), StringComparer.Ordinal);
        var state = new Dictionary<string, int>(StringComparer.Ordinal);
        bool Visit(string n)
        {
            if (state.TryGetValue(n, out int s)) return s == 1;
            state[n] = 1;
            foreach (string m in next.TryGetValue(n, out List<string>? l) ? l : []) if (Visit(m)) return true;
            state[n] = 2;
            return false;
        }
        return table.BuiltinChains.Any(b => Visit(b.Name));
    }

    /// <summary>add_param_to_argv: splits on blanks, honouring double quotes and backslash escapes inside them.</summary>
    public List<string> Tokenize(string line, int lineNo)
    {
        var args = new List<string>();
        var buf = new StringBuilder();
        bool quoteOpen = false, escaped = false;
        foreach (char ch in line)
        {
            if (quoteOpen)
            {
                if (escaped)
                {
                    buf.Append(ch);
                    escaped = false;
                    continue;
                }
                if (ch == '\\')
                {
                    escaped = true;
                    continue;
                }
                if (ch != '"')
                {
                    buf.Append(ch);
                    continue;
                }
                quoteOpen = false;
            }
            else if (ch == '"')
            {
                quoteOpen = true;
                continue;
            }
            if (ch == '"')
            {
                // closing quote: ends the parameter (even an empty one)
            }
            else if (ch is ' ' or '\t' or '\n')
            {
                if (buf.Length == 0) continue;
            }
            else
            {
                buf.Append(ch);
                if (buf.Length >= 1024) throw XtablesException.Param("Parameter too long!");
                continue;
            }
            AddParam(args, buf.ToString(), lineNo);
            buf.Clear();
        }
        if (buf.Length > 0) AddParam(args, buf.ToString(), lineNo);
        return args;
    }

    private void AddParam(List<string> args, string p, int lineNo)
    {
        bool shortWithT = p.Length > 0 && p[0] == '-' && (p.Length < 2 || p[1] != '-') && p.Contains('t', StringComparison.Ordinal);
        bool longTable = p.StartsWith("--t", StringComparison.Ordinal) && "--table".StartsWith(p, StringComparison.Ordinal);
        if (shortWithT || longTable)
        {
            throw XtablesException.Param($"The -t option cannot be used in {_program}.\n");
        }
        args.Add(p);
    }

    private static bool TryParseCounters(string text, out Counters counters)
    {
        counters = default;
        if (text.Length < 5 || text[0] != '[' || text[^1] != ']') return false;
        string[] parts = text[1..^1].Split(':');
        if (parts.Length != 2) return false;
        if (!ulong.TryParse(parts[0], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out ulong p)) return false;
        if (!ulong.TryParse(parts[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out ulong b)) return false;
        counters = new Counters(p, b);
        return true;
    }

    private static string[] SplitLines(string text, out bool lastHasNewline)
    {
        lastHasNewline = text.EndsWith('\n');
        string body = lastHasNewline ? text[..^1] : text;
        if (body.Length == 0 && lastHasNewline) return [string.Empty];
        if (body.Length == 0) return [];
        return body.Split('\n');
    }
}
