# frozen_string_literal: true

# Tools, their parameters, and the registry a tools file fills (see lib/snakepit.rb for the
# user-facing DSL).

module Snakepit
  # Raised by the worker (or by a tool) for arguments that do not fit: category
  # "invalid_arguments", with details naming the parameters.
  class InvalidArguments < StandardError
    attr_reader :details

    def initialize(message, details = {})
      super(message)
      @details = details
    end
  end

  # Parameter types a tool may declare, and the values each accepts. "float" accepts an
  # integer (and passes it on as a Float); "number" keeps what was sent.
  PARAM_TYPES = {
    "int" => ->(v) { v.is_a?(Integer) },
    "float" => ->(v) { v.is_a?(Numeric) },
    "number" => ->(v) { v.is_a?(Numeric) },
    "str" => ->(v) { v.is_a?(String) && v.encoding != Encoding::BINARY },
    "bool" => ->(v) { [true, false].include?(v) },
    "list" => ->(v) { v.is_a?(Array) },
    "dict" => ->(v) { v.is_a?(Hash) },
    "bytes" => ->(v) { v.is_a?(String) && v.encoding == Encoding::BINARY },
    "any" => ->(_) { true },
  }.freeze
  # How a type is named in Describe (the Python worker's names).
  WIRE_TYPES = { "number" => "int or float" }.freeze

  # One declared parameter of a tool.
  Param = Struct.new(:name, :type, :required, :default, :description, keyword_init: true) do
    # name => :type, or name => { type:, default:, required:, description: }. A parameter
    # with a default (even nil) is optional.
    def self.from(name, spec)
      spec = { type: spec } unless spec.is_a?(Hash)
      unknown = spec.keys.map(&:to_sym) - %i[type default required description]
      unless unknown.empty?
        raise ArgumentError, "parameter #{name}: unknown option(s) #{unknown.join(', ')}; " \
                             "allowed: type, default, required, description"
      end
      type = (spec[:type] || "any").to_s
      unless PARAM_TYPES.key?(type)
        raise ArgumentError, "parameter #{name}: type #{type.inspect} is not one of " \
                             "#{PARAM_TYPES.keys.join(', ')}"
      end
      required = spec.fetch(:required) { !spec.key?(:default) }
      new(name: name.to_s, type: type, required: required, default: spec[:default],
          description: spec[:description].to_s)
    end

    def accepts?(value)
      (value.nil? && !required && default.nil?) || PARAM_TYPES.fetch(type).call(value)
    end

    def wire_type
      WIRE_TYPES.fetch(type, type)
    end

    def to_pb
      PB::ParameterSpec.new(name: name, type: wire_type, required: required,
                            default_json: required ? "" : Values.dumps(default),
                            description: description)
    end
  end

  # A registered tool. block: |args, ctx| for unary tools; streaming tools take
  # |args, ctx, out| (out << item sends a chunk) or return an Enumerable of items.
  Tool = Struct.new(:name, :description, :params, :extra, :streaming, :block, keyword_init: true) do
    # The arguments for the block, validated, with defaults filled in; raises InvalidArguments.
    def bind(args)
      args = {} if args.nil?
      unless args.is_a?(Hash)
        raise InvalidArguments.new("arguments of #{name.inspect} must be a JSON object, got " \
                                   "#{args.class}", { "tool" => name })
      end
      return args if params.nil? # declared without params: takes anything
      check_names(args)
      params.each_with_object(args.dup) do |p, out|
        unless out.key?(p.name)
          out[p.name] = p.default
          next
        end
        value = out[p.name]
        unless p.accepts?(value)
          raise InvalidArguments.new(
            "#{name}() argument #{p.name.inspect} must be #{p.wire_type}, got " \
            "#{value.class} #{value.inspect[0, 60]}",
            { "tool" => name, "parameter" => p.name, "expected" => p.wire_type,
              "got" => value.class.name })
        end
        out[p.name] = value.to_f if p.type == "float" && value.is_a?(Integer)
      end
    end

    def check_names(args)
      names = params.map(&:name)
      unexpected = (args.keys - names).sort
      if !unexpected.empty? && !extra
        raise InvalidArguments.new(
          "#{name}() got unexpected argument(s) #{unexpected.join(', ')}; it takes " \
          "#{names.empty? ? 'no arguments' : names.sort.join(', ')}",
          { "tool" => name, "unexpected" => unexpected, "parameters" => names.sort })
      end
      missing = params.select { |p| p.required && !args.key?(p.name) }.map(&:name)
      return if missing.empty?
      raise InvalidArguments.new("#{name}() missing required argument(s) #{missing.join(', ')}",
                                 { "tool" => name, "missing" => missing })
    end

    def to_pb
      PB::ToolSpec.new(name: name, description: description, streaming: streaming,
                       parameters: (params || []).map(&:to_pb))
    end

    # Calls the block with as many of (args, ctx, out) as it takes.
    def call(*values)
      return block.call(*values) unless block.lambda? # a proc ignores what it does not take
      kinds = block.parameters.map(&:first)
      n = kinds.include?(:rest) ? values.size : kinds.count { |k| %i[req opt].include?(k) }
      block.call(*values.first(n))
    end

    # Whether a streaming tool writes to `out` (|args, ctx, out|) rather than returning items.
    def writes_to_out?
      block.parameters.size >= 3
    end
  end

  # What a tools file defines: tools, hooks, the adapter's name and version.
  class Registry
    attr_reader :tools, :name, :version, :hooks

    def initialize(name)
      @tools = {}
      @name = name
      @version = "0.1.0"
      @hooks = { initialize: [], shutdown: [] }
    end

    def adapter(name: nil, version: nil)
      @name = name.to_s if name
      @version = version.to_s if version
    end

    def add(name, description:, params:, extra:, streaming:, block:)
      name = name.to_s
      raise ArgumentError, "tool #{name.inspect}: a block is required" if block.nil?
      raise ArgumentError, "tool name must be a non-empty String or Symbol" if name.empty?
      raise ArgumentError, "tool #{name.inspect} is defined twice" if @tools.key?(name)
      parsed = params&.map { |pname, spec| Param.from(pname, spec) }
      @tools[name] = Tool.new(name: name, description: description.to_s, params: parsed,
                              extra: params.nil? || extra, streaming: streaming, block: block)
    end

    def hook(kind, block)
      raise ArgumentError, "on_#{kind} needs a block" if block.nil?
      @hooks.fetch(kind) << block
    end
  end
end
